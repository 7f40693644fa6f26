"""The text prompt an encoder reads beside an image (Florence-2's tasks): task tokens mapped to
the prompts the model was trained on, laid out as ``<s> prompt </s>``. The table comes from the
artifact's manifest (``export.encoder_prompt``: bos, eos, tasks), written at export from the
model folder's own processor."""

from __future__ import annotations

from typing import Any

from edgekit.errors import InputError

DEFAULT_TASK = "<CAPTION>"


def prompt_text(prompt: str | None, tasks: dict[str, str]) -> str:
    """The text the encoder reads for ``prompt``: a task token alone becomes its question, a
    task token followed by text fills the task's ``{input}``; other text is read as it is."""
    prompt = (DEFAULT_TASK if DEFAULT_TASK in tasks else "") if prompt is None else prompt
    for token, template in tasks.items():
        if token not in prompt:
            continue
        rest = prompt.replace(token, "").strip()
        if "{input}" in template:
            return template.format(input=rest)
        if rest:
            raise InputError(
                f"the task {token} takes no text after it (got '{rest}')", f"pass --prompt '{token}' alone"
            )
        return template
    return prompt


def encoder_prompt_ids(section: dict, tokenizer: Any, prompt: str | None) -> list[int]:
    """``<s> prompt </s>`` as ids, as the processor lays them out after the image placeholders;
    ``section`` is the manifest's ``export.encoder_prompt`` (bos, eos, tasks)."""
    text = prompt_text(prompt, section.get("tasks") or {})
    return [int(section["bos"]), *tokenizer(text, add_special_tokens=False)["input_ids"], int(section["eos"])]
