"""Florence-2 (``Florence2ForConditionalGeneration``) seen as an encoder-decoder with a task prompt.

Florence-2 is the transformers model closest to OFA: one seq2seq model for captioning, OCR,
detection and grounding, the task chosen by a text prompt. Its processor lays out the encoder's
input as ``<image> x N, <s>, prompt, </s>`` and the model scatters the image features into the
N placeholders, then runs its BART encoder over the whole sequence. The placeholders always lead,
so ``as_seq2seq`` takes the prompt's ids alone (``<s> prompt </s>``) and puts the image features
in front of their embeddings: the same encoder input, without N placeholder ids in the graph. The
decoder is BART's, stepped like every encoder-decoder's (``models/seq2seq.py``).

``task_prompts`` reads the task-token table (``<CAPTION>`` -> its question) from the folder's own
processor into the manifest, so the artifact's runtime (``models/task_prompt.py``) turns
``--prompt "<CAPTION>"`` into the text the model was trained on without transformers' processor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def as_seq2seq(florence: Any) -> Any:
    import torch
    import transformers
    from transformers.modeling_outputs import BaseModelOutput

    class Florence2Seq2Seq(torch.nn.Module):
        def __init__(self, model: Any):
            super().__init__()
            self.florence = model
            self.config = model.config
            self.generation_config = model.generation_config

        def encode(self, pixel_values, input_ids):
            image = self.florence.model.get_image_features(pixel_values).pooler_output
            text = self.florence.get_input_embeddings()(input_ids)
            embeds = torch.cat([image.to(text.dtype), text], dim=1)
            return self.florence.model.language_model.encoder(inputs_embeds=embeds).last_hidden_state

        def forward(
            self,
            pixel_values=None,
            input_ids=None,
            decoder_input_ids=None,
            encoder_outputs=None,
            past_key_values=None,
            use_cache=True,
            attention_mask=None,
        ):
            hidden = self.encode(pixel_values, input_ids) if encoder_outputs is None else encoder_outputs[0]
            return self.florence(
                encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                decoder_input_ids=decoder_input_ids,
                past_key_values=past_key_values,
                use_cache=use_cache,
            )

        @staticmethod
        def prompt_section(model_dir: Path) -> dict[str, Any]:
            """What the runtime needs to lay out the encoder's prompt (``models/task_prompt.py``)."""
            text = florence.config.get_text_config(decoder=True)
            return {
                "bos": int(text.bos_token_id),
                "eos": int(text.eos_token_id),
                "tasks": task_prompts(model_dir),
            }

        def reference_generate(self, generation_config: Any, decoder_prompt: list[int], **inputs) -> Any:
            """transformers' own Florence-2 generation, fed the processor's layout (placeholders first)."""
            pixels, ids = inputs["pixel_values"], inputs["input_ids"]
            with torch.inference_mode():
                count = self.florence.model.get_image_features(pixels).pooler_output.shape[1]
            holders = torch.full((ids.shape[0], count), self.config.image_token_id, dtype=ids.dtype)
            return transformers.GenerationMixin.generate(
                self.florence,
                input_ids=torch.cat([holders, ids], dim=1),
                pixel_values=pixels,
                generation_config=generation_config,
            )

    return Florence2Seq2Seq(florence).eval()


def task_prompts(model_dir: Path) -> dict[str, Any]:
    """The folder's task tokens and the prompt each stands for (``{input}`` where the task takes
    text after its token), read from its Florence-2 processor; empty without one."""
    import transformers

    try:
        processor = transformers.Florence2Processor.from_pretrained(str(model_dir))
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return {}
    return {**dict(processor.task_prompts_without_inputs), **dict(processor.task_prompts_with_input)}
