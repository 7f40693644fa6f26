"""What edgekit knows about models, shared by export (which traces them) and the PyTorch reference
runtime (which runs them): the families (``specs``), how each kind's PyTorch module is built
(``encoder``, ``vision``, ``decoder``, ``seq2seq``), the cache layouts generation reads
(``cache_io``), the source folder (``source``), and the CTranslate2 reader (``ctranslate2``)."""
