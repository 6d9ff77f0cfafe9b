"""Builds a local Hugging Face VLM directory from a config alone (random weights, a byte-level BPE
tokenizer trained on the given text, the architecture's own processor), for `hf_vla` where no
pretrained weights can be downloaded: tests use the tiny sizes, `bench/hf_vla.py` the real ones.

    ript hf-backbone --arch smolvlm --size tiny --out runs/backbones/smolvlm-tiny

A real checkpoint (e.g. SmolVLM-256M-Instruct downloaded elsewhere) is used as it is: point
`policy.backbone` at its directory.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SIZES: dict[str, dict[str, dict]] = {
    # Idefics3 is SmolVLM's architecture. "256m" and "500m" follow SmolVLM-256M/500M's published configs.
    "smolvlm": {
        "tiny": {
            "vision": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
            "text": dict(
                hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
            ),
            "image_size": 32,
            "patch_size": 8,
            "scale_factor": 2,
        },
        "256m": {
            "vision": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12),
            "text": dict(
                hidden_size=576,
                intermediate_size=1536,
                num_hidden_layers=30,
                num_attention_heads=9,
                num_key_value_heads=3,
            ),
            "image_size": 512,
            "patch_size": 16,
            "scale_factor": 4,
            "vocab_size": 49280,
        },
        "500m": {
            "vision": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12),
            "text": dict(
                hidden_size=960,
                intermediate_size=2560,
                num_hidden_layers=32,
                num_attention_heads=15,
                num_key_value_heads=5,
            ),
            "image_size": 512,
            "patch_size": 16,
            "scale_factor": 4,
            "vocab_size": 49280,
        },
    },
    "paligemma": {
        "tiny": {
            "vision": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
            "text": dict(
                hidden_size=64,
                intermediate_size=128,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=1,
                head_dim=16,
            ),
            "image_size": 32,
            "patch_size": 8,
        },
    },
}
ARCHITECTURES = tuple(SIZES)

DEFAULT_CORPUS = (
    "pick up the black bowl and place it on the plate",
    "put the bowl on the stove, open the top drawer of the cabinet and put the cream cheese in the basket",
    "pick up the alphabet soup next to the cookie box between the ramekin and the wooden cabinet",
)


def train_tokenizer(corpus: Iterable[str], special_tokens: list[str], vocab_size: int = 512):
    """A byte-level BPE (any text tokenises; frequent words of `corpus` become single tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special_tokens, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(list(corpus), trainer)
    pad, bos, eos, *extra = special_tokens
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=pad, bos_token=bos, eos_token=eos, additional_special_tokens=extra
    )


def build_backbone(
    arch: str, size: str, out: str | Path, corpus: Iterable[str] = DEFAULT_CORPUS, seed: int = 0
) -> Path:
    """Writes config, random weights and processor of `arch` at `size` to `out`; returns `out`."""
    import torch
    from transformers import AutoModelForImageTextToText

    if arch not in SIZES or size not in SIZES[arch]:
        known = ", ".join(f"{a}: {'/'.join(SIZES[a])}" for a in SIZES)
        raise ValueError(f"unknown architecture/size {arch}/{size}; known: {known}")
    spec = SIZES[arch][size]
    torch.manual_seed(seed)
    if arch == "smolvlm":
        config, processor = _idefics3(spec, corpus)
    else:
        config, processor = _paligemma(spec, corpus)
    model = AutoModelForImageTextToText.from_config(config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _idefics3(spec: dict, corpus: Iterable[str]):
    from transformers import Idefics3Config, Idefics3ImageProcessor, Idefics3Processor

    tokenizer = train_tokenizer(
        corpus, ["<pad>", "<s>", "</s>", "<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>"]
    )
    side = spec["image_size"]
    image_seq_len = (side // spec["patch_size"]) ** 2 // spec["scale_factor"] ** 2
    # One image per camera, no tiling: a fixed number of tokens per image, so a fixed prompt length.
    image_processor = Idefics3ImageProcessor(
        do_image_splitting=False, size={"longest_edge": side}, max_image_size={"longest_edge": side}
    )
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=image_seq_len)
    vocab = spec.get("vocab_size", len(tokenizer))
    config = Idefics3Config(
        vision_config=dict(spec["vision"], image_size=side, patch_size=spec["patch_size"]),
        text_config=dict(spec["text"], model_type="llama", vocab_size=vocab, pad_token_id=tokenizer.pad_token_id),
        scale_factor=spec["scale_factor"],
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    return config, processor


def _paligemma(spec: dict, corpus: Iterable[str]):
    from transformers import PaliGemmaConfig, PaliGemmaProcessor, SiglipImageProcessor

    tokenizer = train_tokenizer(corpus, ["<pad>", "<bos>", "<eos>", "<image>"])
    side = spec["image_size"]
    image_processor = SiglipImageProcessor(size={"height": side, "width": side})
    image_processor.image_seq_length = (side // spec["patch_size"]) ** 2
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
    text_width = spec["text"]["hidden_size"]
    config = PaliGemmaConfig(
        vision_config=dict(spec["vision"], image_size=side, patch_size=spec["patch_size"], projection_dim=text_width),
        text_config=dict(
            spec["text"],
            model_type="gemma",
            vocab_size=spec.get("vocab_size", len(tokenizer)),
            pad_token_id=tokenizer.pad_token_id,
        ),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        projection_dim=text_width,
    )
    return config, processor
