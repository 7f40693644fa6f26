"""Knowledge distillation: a teacher's layers and predictions teach a smaller student."""
