"""BLIP captioners (``BlipForConditionalGeneration``) seen as encoder-decoders.

BLIP joins a ViT to a BERT text decoder with cross-attention, but its forward takes
``pixel_values`` and ``input_ids`` together and its ``generate`` calls the text decoder itself.
``as_seq2seq`` wraps it in the forward every encoder-decoder has (``decoder_input_ids``,
``encoder_outputs``, ``past_key_values``), so the generic graphs of ``models/seq2seq.py``
export it unchanged: the vision model (and the cross-attention K/V) once, the text decoder per
step. Its generation settings are those ``BlipForConditionalGeneration.generate`` uses: start
at the text config's ``bos_token_id`` ([DEC]), stop at its ``sep_token_id``.
"""

from __future__ import annotations

from typing import Any


def as_seq2seq(blip: Any) -> Any:
    import torch
    import transformers

    class BlipSeq2Seq(torch.nn.Module):
        def __init__(self, model: Any):
            super().__init__()
            self.blip = model
            self.config = model.config
            text = model.config.text_config
            self.generation_config = transformers.GenerationConfig(
                decoder_start_token_id=text.bos_token_id,
                bos_token_id=text.bos_token_id,
                eos_token_id=text.sep_token_id,
                pad_token_id=text.pad_token_id,
            )

        def forward(
            self,
            pixel_values=None,
            decoder_input_ids=None,
            encoder_outputs=None,
            past_key_values=None,
            use_cache=True,
            attention_mask=None,
        ):
            if encoder_outputs is None:
                hidden = self.blip.vision_model(pixel_values=pixel_values)[0]
            else:
                hidden = encoder_outputs[0]
            out = self.blip.text_decoder(
                input_ids=decoder_input_ids,
                encoder_hidden_states=hidden,
                past_key_values=past_key_values,
                use_cache=use_cache,
            )
            return transformers.modeling_outputs.Seq2SeqLMOutput(
                logits=out.logits, past_key_values=out.past_key_values, encoder_last_hidden_state=hidden
            )

        def reference_generate(self, generation_config: Any, decoder_prompt: list[int], **inputs) -> Any:
            """transformers' own BLIP generation (``[start] + new tokens`` per row), for validation."""
            batch = inputs["pixel_values"].shape[0]
            ids = torch.tensor([decoder_prompt + [self.config.text_config.sep_token_id]]).repeat(batch, 1)
            return self.blip.generate(input_ids=ids, generation_config=generation_config, **inputs)

    return BlipSeq2Seq(blip).eval()
