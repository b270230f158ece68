"""SentenceEncoder: any `AutoModel` encoder + SimCSE pooler + the MLP head used in training.

The saved folder is a plain transformers checkpoint (config.json, model.safetensors, tokenizer) with the
sentence-transformers module files beside it, so `AutoModel.from_pretrained(path)` and
`SentenceTransformer(path)` both load it, and `SentenceEncoder.from_pretrained(path)` restores the head too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel

import hncse.modeling.lora as lora
from hncse.errors import ModelNotFoundError
from hncse.modeling.attention import attention_mask_for, is_decoder_only
from hncse.modeling.backbone import check_pooler, default_pooler, load_config, prepare_config
from hncse.modeling.folder import (
    HNCSE_CONFIG_NAME,
    MLP_WEIGHTS_NAME,
    WEIGHTS_NAME,
    hncse_config_disagreement,
    read_sentence_transformers_modules,
    sentence_transformers_length,
    write_sentence_transformers_files,
)
from hncse.modeling.pooling import POOLERS, get_pooler
from hncse.modeling.resolve import explain_load_failure, resolve_model_path
from hncse.modeling.tokens import prepare_decoder_tokenizer

FEATURE_KEYS = ("input_ids", "attention_mask", "token_type_ids")  # the tokenizer outputs `forward` takes
HUB_KWARGS = ("cache_dir", "revision", "token", "local_files_only", "force_download", "trust_remote_code")
LOAD_KWARGS = ("dtype", "attn_implementation", "device_map")  # AutoModel.from_pretrained's own, not config fields


class DenseLayer(nn.Module):
    """A sentence-transformers Dense module: Linear then an activation (`hncse.modeling.folder.ST_ACTIVATIONS`)."""

    def __init__(self, in_features: int, out_features: int, bias: bool, activation: str):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.activation = getattr(nn, activation)()
        self.activation_name = activation

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.linear(x))

    def spec(self) -> dict:
        """What `write_sentence_transformers_files` writes for it."""
        linear = self.linear
        return {
            "in_features": linear.in_features,
            "out_features": linear.out_features,
            "bias": linear.bias is not None,
            "activation": self.activation_name,
            "state": linear.state_dict(),
        }


def read_hncse_config(folder: str) -> dict:
    """hncse_config.json (pooler, head use, length, prompt), or one line naming the file and what is wrong."""
    path = os.path.join(folder, HNCSE_CONFIG_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelNotFoundError(f"{path}: not readable JSON ({str(error).splitlines()[0]})") from None
    if not isinstance(saved, dict):
        raise ModelNotFoundError(f"{path}: not a JSON object")
    if "pooler_type" in saved and saved["pooler_type"] not in POOLERS:
        raise ModelNotFoundError(
            f"{path}: pooler_type {saved['pooler_type']!r} is not one of {', '.join(POOLERS)} (edited by hand?)"
        )
    return saved


def check_against_sentence_transformers(folder: str, saved: dict, config, given: list[str]) -> dict:
    """The modules that `SentenceEncoder` takes from the sentence-transformers files of a folder that also has an
    hncse_config.json (those read from a sentence-transformers folder, else none), once both files are found to
    describe the same embedding; else one line naming both files and the difference.

    Refused rather than resolved: hncse_config.json says what the modules cannot (the MLP head trained with pooler
    `cls`, used in training only), so after an edit to either side neither file is known to be the intended one,
    and following one would silently score, or go on training, another function than the other loader computes.
    The way out the message gives, deleting hncse_config.json, makes the folder a plain sentence-transformers one,
    whose modules `from_pretrained` then reproduces. A folder that `save_pretrained` wrote agrees with itself."""
    if not os.path.isfile(os.path.join(folder, "modules.json")):
        return {}  # no sentence-transformers files: hncse_config.json alone describes the folder
    modules = read_sentence_transformers_modules(folder)
    described = {**saved, "pooler_type": saved.get("pooler_type") or default_pooler(config)}
    why = hncse_config_disagreement(folder, described, modules, config.num_hidden_layers, tuple(given))
    if why:
        raise ModelNotFoundError(
            f"{why}: SentenceEncoder and SentenceTransformer would compute different embeddings; delete "
            f"{HNCSE_CONFIG_NAME} to load the folder as sentence-transformers does, or undo the edit"
        )
    return modules if saved.get("sentence_transformers_modules") else {}


class SentenceEncoder(nn.Module):
    """Encoder + pooler (+ MLP head). `forward` returns one vector per sentence: (B, d).

    Args:
        encoder: a transformers base model (BERT, RoBERTa, MPNet, DistilBERT, …).
        tokenizer: its tokenizer; used by `encode` and saved beside the weights.
        pooler_type: a name in POOLERS (`hncse.modeling.pooling`).
        mlp_only_train: with pooler `cls`, apply the Linear+tanh head in training only (SimCSE unsupervised).
        max_seq_length: truncation length for `encode` (evaluation and inference; training truncates its data).
        layer_mix, dense, normalize: the modules of a sentence-transformers folder that change its vectors
            (`read_sentence_transformers_modules`): token states averaged over layers with learned weights before
            pooling (WeightedLayerPooling), Dense modules after it, and a final L2 normalisation. Trained and saved
            with the model, so the folder it writes computes what the one it came from did.
    """

    def __init__(
        self,
        encoder: PreTrainedModel,
        tokenizer,
        pooler_type: str = "cls",
        mlp_only_train: bool = True,
        max_seq_length: int | None = None,
        layer_mix: dict | None = None,
        dense: list[dict] | None = None,
        normalize: bool = False,
        prompt: str | None = None,
        prompt_in_pooling: bool = True,
    ):
        super().__init__()
        if pooler_type not in POOLERS:
            raise ValueError(f"pooler_type: unknown value {pooler_type!r}; choose one of {', '.join(POOLERS)}")
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.pooler_type = pooler_type
        self.mlp_only_train = mlp_only_train
        hidden = encoder.config.hidden_size
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh()) if POOLERS[pooler_type].mlp_head else None
        if self.mlp is not None:
            std = getattr(encoder.config, "initializer_range", 0.02)
            nn.init.normal_(self.mlp[0].weight, std=std)
            nn.init.zeros_(self.mlp[0].bias)
        self.max_seq_length = int(max_seq_length) if max_seq_length is not None else min(512, self.position_limit)
        self.layer_start = layer_mix["layer_start"] if layer_mix is not None else None
        self.layer_weights = nn.Parameter(layer_mix["weights"].clone().float()) if layer_mix is not None else None
        self.dense = nn.ModuleList()
        for spec in dense or []:
            layer = DenseLayer(spec["in_features"], spec["out_features"], spec["bias"], spec["activation"])
            layer.linear.load_state_dict(spec["state"])
            self.dense.append(layer)
        self.normalize = normalize
        self.save_adapter = False  # with LoRA (`add_lora`): peft's adapter files in the final folder too
        self.prompt = prompt or None  # put before every sentence, in training and by `encode`
        self.prompt_in_pooling = prompt_in_pooling
        self.prompt_length = self._prompt_length() if prompt else 0
        # The encoder's own pooler (BERT/RoBERTa's Linear+tanh) is never used: freeze it so it stays as loaded
        # and distributed training does not see parameters without gradients.
        for name, param in encoder.named_parameters():
            if name.startswith("pooler."):
                param.requires_grad_(False)

    def _prompt_length(self) -> int:
        """The leading tokens that are the prompt's (and a BOS/CLS token before it), which pooling leaves out when
        `prompt_in_pooling` is False: sentence-transformers' count, the prompt tokenised alone less a trailing
        special token."""
        ids = self.tokenizer(self.prompt, truncation=True, max_length=self.max_seq_length)["input_ids"]
        return len(ids) - (1 if ids and ids[-1] in self.tokenizer.all_special_ids else 0)

    def length_refused(self, max_seq_length: int, name: str) -> str | None:
        """Why `max_seq_length` cannot be used with this encoder (`name` as the user gave it), or None."""
        if max_seq_length > self.position_limit:
            return f"--max_seq_length {max_seq_length} is longer than {name} takes ({self.position_limit} tokens)"
        return None

    @property
    def position_limit(self) -> int:
        """The longest input the encoder takes: its position embeddings, or its tokenizer's limit if smaller."""
        limits = [
            getattr(self.encoder.config, "max_position_embeddings", None),
            getattr(self.tokenizer, "model_max_length", None),
        ]
        limits = [m for m in limits if isinstance(m, int) and 0 < m < 10**6]  # tokenizers without one say 1e30
        return min(limits) if limits else 512

    # ---- building and loading -------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str,
        pooler_type: str | None = None,
        mlp_only_train: bool | None = None,
        max_seq_length: int | None = None,
        bidirectional: bool | None = None,
        dropout: float | None = None,
        prompt: str | None = None,
        prompt_in_pooling: bool | None = None,
        argument: str = "--model_name_or_path",
        **model_kwargs,
    ) -> SentenceEncoder:
        """Load a transformers checkpoint or a folder saved by `save_pretrained` (its pooler and head included).

        Arguments left as None come from the folder's hncse_config.json (which must describe the embedding its
        sentence-transformers files do: `check_against_sentence_transformers`), else from a sentence-transformers
        folder's modules (Pooling: mean → avg, CLS → cls_before_pooler, lasttoken; and the WeightedLayerPooling,
        Dense and Normalize modules, which are then part of the model), else SimCSE's defaults (cls, MLP in
        training only; lasttoken for a decoder). A `pooler_type` given for a sentence-transformers folder replaces
        its pooling modules. bidirectional: a decoder attends both ways (True) or causally (False); None: as its
        config says. dropout: every dropout probability of the encoder's config (`hncse.modeling.dropout`).
        prompt, prompt_in_pooling: text put before every sentence, and whether pooling counts its tokens (None: the
        folder's, from hncse_config.json or its sentence-transformers default prompt; else no prompt).
        argument: how the caller's command line names the model, for the error when it cannot be loaded.
        Other keyword arguments set config fields (e.g. hidden_dropout_prob) or go to `AutoModel.from_pretrained`.
        """
        path = resolve_model_path(model_name_or_path)
        hub = {k: model_kwargs.pop(k) for k in HUB_KWARGS if k in model_kwargs}
        # float32 whatever the folder holds (transformers 5 would keep a 16-bit checkpoint's dtype, e.g. a ZeRO-3
        # or bf16 folder): the optimiser updates these weights, and mixed precision needs float32 masters.
        model_kwargs.setdefault("dtype", torch.float32)
        config = load_config(model_name_or_path, argument, **hub)
        for key in [k for k in model_kwargs if k not in LOAD_KWARGS and hasattr(config, k)]:
            setattr(config, key, model_kwargs.pop(key))
        prepare_config(config, model_name_or_path, bidirectional=bidirectional, dropout=dropout)
        saved, modules = {}, {}
        if os.path.isfile(os.path.join(path, HNCSE_CONFIG_NAME)):
            saved = read_hncse_config(path)
            if pooler_type is None:  # the folder's own embedding: the one sentence-transformers computes, or refused
                given = [k for k, v in (("max_seq_length", max_seq_length), ("prompt", prompt),
                                        ("prompt_in_pooling", prompt_in_pooling)) if v is not None]  # fmt: skip
                modules = check_against_sentence_transformers(path, saved, config, given)
            elif saved.get("sentence_transformers_modules"):
                modules = read_sentence_transformers_modules(path)
        elif pooler_type is None:  # a sentence-transformers folder computes what its modules say, or is refused
            saved = modules = read_sentence_transformers_modules(path)
        else:  # a pooler of ours in place of the folder's pooling modules: only its length applies
            saved = {"max_seq_length": sentence_transformers_length(path)}
        if pooler_type is not None and pooler_type != saved.get("pooler_type", pooler_type):
            modules = {}
        pooler_type = pooler_type if pooler_type is not None else saved.get("pooler_type", default_pooler(config))
        check_pooler(config, pooler_type, model_name_or_path)
        try:
            encoder = AutoModel.from_pretrained(path, config=config, **hub, **model_kwargs)
            tokenizer = AutoTokenizer.from_pretrained(path, **hub)
        except (OSError, ValueError) as error:
            raise explain_load_failure(model_name_or_path, error, argument) from error
        if len(tokenizer) <= len(set(tokenizer.all_special_ids)):
            # transformers builds a tokenizer of special tokens alone when a folder has none of its files: every
            # word would be [UNK], and training would go on without a word of its data.
            raise ModelNotFoundError(
                f"{model_name_or_path}: no tokenizer files there (its tokenizer knows only its {len(tokenizer)} "
                "special tokens); copy tokenizer.json or vocab.txt etc. from the model it was made from"
            )
        if is_decoder_only(config):  # an unknown pooler is refused by the constructor, below
            append_eos = pooler_type in POOLERS and POOLERS[pooler_type].appends_eos
            prepare_decoder_tokenizer(tokenizer, model_name_or_path, append_eos=append_eos)
        model = cls(
            encoder,
            tokenizer,
            pooler_type=pooler_type,
            mlp_only_train=mlp_only_train if mlp_only_train is not None else saved.get("mlp_only_train", True),
            max_seq_length=max_seq_length if max_seq_length is not None else saved.get("max_seq_length"),
            layer_mix=modules.get("layer_mix"),
            dense=modules.get("dense"),
            normalize=modules.get("normalize", False),
            prompt=prompt if prompt is not None else saved.get("prompt"),
            prompt_in_pooling=prompt_in_pooling
            if prompt_in_pooling is not None
            else saved.get("prompt_in_pooling", True),
        )
        mlp_file = os.path.join(path, MLP_WEIGHTS_NAME)
        if model.mlp is not None and os.path.isfile(mlp_file):
            model.mlp[0].load_state_dict(load_file(mlp_file))
        return model

    def load_weights(self, folder: str) -> None:
        """Load encoder and head weights saved by `save_pretrained` into this model (checkpoint resume). With LoRA,
        the checkpoint's adapter; the frozen weights stay the base model's."""
        if lora.is_lora(self.encoder):
            lora.load_adapter(self.encoder, folder)
        else:
            state = load_file(os.path.join(folder, WEIGHTS_NAME))
            missing, unexpected = self.encoder.load_state_dict(state, strict=False)
            # Tied or buffer-like entries may be left out by save_pretrained; real weights must all be there.
            missing = [k for k in missing if not k.endswith("position_ids")]
            if missing or unexpected:
                raise RuntimeError(
                    f"{folder}: weights do not match the model (missing {missing[:5]}, unexpected {unexpected[:5]})"
                )
        if self.layer_weights is not None or len(self.dense):
            modules = read_sentence_transformers_modules(folder)
            with torch.no_grad():
                if self.layer_weights is not None:
                    self.layer_weights.copy_(modules["layer_mix"]["weights"])
                for layer, spec in zip(self.dense, modules["dense"]):
                    layer.linear.load_state_dict(spec["state"])
        mlp_file = os.path.join(folder, MLP_WEIGHTS_NAME)
        if self.mlp is not None:
            if not os.path.isfile(mlp_file):
                raise ModelNotFoundError(f"{mlp_file}: the checkpoint has no MLP head weights")
            self.mlp[0].load_state_dict(load_file(mlp_file, device=str(self.mlp[0].weight.device)))

    def save_pretrained(
        self, output_dir: str, state_dict: dict[str, Tensor] | None = None, adapter: bool | None = None
    ) -> None:
        """Write the transformers checkpoint, the head, hncse_config.json and the sentence-transformers files. With
        LoRA the checkpoint holds the merged weights, and peft's adapter files beside them if `adapter` (default:
        `--save_adapter`; checkpoints always, to resume).

        state_dict: this module's full state dict, when the caller gathered it (DeepSpeed ZeRO-3).
        """
        os.makedirs(output_dir, exist_ok=True)
        if state_dict is None:
            state_dict = self.state_dict()
        encoder_state = {k[len("encoder.") :]: v for k, v in state_dict.items() if k.startswith("encoder.")}
        if lora.is_lora(self.encoder):
            with_adapter = self.save_adapter if adapter is None else adapter
            if with_adapter:
                lora.save_adapter(self.encoder, output_dir, encoder_state)
            merged = lora.merged_state_dict(self.encoder, encoder_state)
            self.encoder.get_base_model().save_pretrained(output_dir, state_dict=merged)
        else:
            self.encoder.save_pretrained(output_dir, state_dict=encoder_state)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(output_dir)
        mlp_state = None
        if self.mlp is not None:
            mlp_state = {k: state_dict[f"mlp.0.{k}"].detach().cpu().contiguous() for k in ("weight", "bias")}
            save_file(mlp_state, os.path.join(output_dir, MLP_WEIGHTS_NAME))
        with open(os.path.join(output_dir, HNCSE_CONFIG_NAME), "w", encoding="utf-8") as f:
            json.dump(
                {
                    "pooler_type": self.pooler_type,
                    "mlp_only_train": self.mlp_only_train,
                    "max_seq_length": self.max_seq_length,
                    **({"prompt": self.prompt, "prompt_in_pooling": self.prompt_in_pooling} if self.prompt else {}),
                    **({"sentence_transformers_modules": True} if self.sentence_transformers_modules else {}),
                },
                f,
                indent=2,
            )
            f.write("\n")
        write_sentence_transformers_files(
            output_dir,
            pooler_type=self.pooler_type,
            hidden_size=self.encoder.config.hidden_size,
            num_hidden_layers=self.encoder.config.num_hidden_layers,
            max_seq_length=self.max_seq_length,
            mlp_state=mlp_state if self.uses_mlp_at_inference else None,
            layer_mix=self._layer_mix_spec(state_dict),
            dense=[
                {**layer.spec(), "state": {k: state_dict[f"dense.{i}.linear.{k}"] for k in layer.linear.state_dict()}}
                for i, layer in enumerate(self.dense)
            ],
            normalize=self.normalize,
            prompt=self.prompt,
            prompt_in_pooling=self.prompt_in_pooling,
        )

    def _layer_mix_spec(self, state_dict: dict[str, Tensor]) -> dict | None:
        if self.layer_weights is None:
            return None
        return {"layer_start": self.layer_start, "weights": state_dict["layer_weights"].detach().cpu().float()}

    @property
    def sentence_transformers_modules(self) -> list[str]:
        """The modules of the sentence-transformers folder it was loaded from that change its vectors."""
        return (
            (["WeightedLayerPooling"] if self.layer_weights is not None else [])
            + ["Dense"] * len(self.dense)
            + (["Normalize"] if self.normalize else [])
        )

    def add_lora(
        self, r: int, alpha: float, dropout: float, target_modules: list[str] | None = None, save_adapter=False
    ) -> None:
        """Train LoRA adapters instead of the encoder's weights (`hncse.modeling.lora`); the head still trains."""
        self.encoder = lora.add_lora(self.encoder, r, alpha, dropout, target_modules)
        self.save_adapter = save_adapter

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs=None, **kwargs) -> None:
        """Recompute the encoder's layer activations in the backward pass (`--activation_checkpointing`); the
        Trainer's other options (`every_n_layers`, `offload`) pass through. With LoRA the frozen embeddings'
        output requires grad, so that reentrant checkpointing still passes gradients to the adapters."""
        if lora.is_lora(self.encoder):
            self.encoder.enable_input_require_grads()
        if hasattr(self.encoder, "activation_checkpointing_enable"):  # transformers ≥ 5.23
            self.encoder.activation_checkpointing_enable(
                activation_checkpointing_kwargs=activation_checkpointing_kwargs, **kwargs
            )
        else:
            self.encoder.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs=activation_checkpointing_kwargs, **kwargs
            )

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None, **kwargs) -> None:
        """What the Trainer of transformers < 5.23 calls (`--gradient_checkpointing`, the name before 5.23)."""
        self.activation_checkpointing_enable(gradient_checkpointing_kwargs, **kwargs)

    # ---- forward and inference ------------------------------------------------------------------------

    @property
    def uses_mlp_at_inference(self) -> bool:
        return self.mlp is not None and not self.mlp_only_train

    @property
    def config(self):
        """The encoder's transformers config (DeepSpeed's "auto" values read hidden_size from it)."""
        return self.encoder.config

    @property
    def embedding_dim(self) -> int:
        return self.dense[-1].linear.out_features if len(self.dense) else self.encoder.config.hidden_size

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        inputs = {"input_ids": input_ids, "attention_mask": self.attention_mask_for_encoder(attention_mask)}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        pooler = get_pooler(self.pooler_type)
        hidden_states = pooler.needs_hidden_states or self.layer_weights is not None
        outputs = self.encoder(**inputs, output_hidden_states=hidden_states, return_dict=True)
        states = outputs.last_hidden_state
        if self.layer_weights is not None:  # WeightedLayerPooling: a weighted mean of the layers' token states
            layers = torch.stack(outputs.hidden_states[self.layer_start :])  # (layers, B, L, d)
            weights = self.layer_weights.to(layers.dtype)
            states = (weights[:, None, None, None] * layers).sum(dim=0) / weights.sum()
        pool_mask = attention_mask
        if self.prompt_length and not self.prompt_in_pooling:  # the prompt's tokens out of the mean
            pool_mask = attention_mask.clone()
            pool_mask[:, : self.prompt_length] = 0
        pooled = pooler.pool(pool_mask, states, outputs.hidden_states)  # (B, d)
        if self.mlp is not None and (self.training or not self.mlp_only_train):
            pooled = self.mlp(pooled)
        for layer in self.dense:
            pooled = layer(pooled)
        if self.normalize:
            pooled = F.normalize(pooled, dim=-1)
        return pooled

    def attention_mask_for_encoder(self, attention_mask: Tensor) -> Tensor:
        """The mask the model attends by, as its saved folder will (`hncse.modeling.attention`)."""
        return attention_mask_for(self.encoder.config, attention_mask)

    @torch.inference_mode()
    def encode(
        self,
        sentences: Sequence[str],
        batch_size: int = 128,
        normalize: bool = False,
        convert_to_numpy: bool = False,
    ) -> Tensor | np.ndarray:
        """Inference embeddings (no MLP when it is training-only), in the input order, float32 on CPU.

        All sentences are tokenised at once and batched by token count, so batches hold sequences of (nearly)
        equal length and almost no padding is computed.
        """
        if len(sentences) == 0:
            out = torch.empty(0, self.embedding_dim)
            return out.numpy() if convert_to_numpy else out
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        texts = [self.prompt + s for s in sentences] if self.prompt else list(sentences)
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_seq_length, return_attention_mask=False)
        ids = encoded["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        with_token_types = "token_type_ids" in self.tokenizer.model_input_names
        out = torch.empty(len(ids), self.embedding_dim, dtype=torch.float32)
        try:
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                input_ids = torch.full((len(idx), len(ids[idx[0]])), pad_id, dtype=torch.long)
                attention_mask = torch.zeros_like(input_ids)
                for row, i in enumerate(idx):
                    input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
                    attention_mask[row, : len(ids[i])] = 1
                features = {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}
                if with_token_types:
                    features["token_type_ids"] = torch.zeros_like(features["input_ids"])
                out[idx] = self(**features).float().cpu()
        finally:
            self.train(was_training)
        if normalize:
            out = F.normalize(out, dim=-1)
        return out.numpy() if convert_to_numpy else out


def similarity(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> Tensor:
    """Cosine similarity matrix (len(a), len(b)) between two sets of embeddings, as float32 on CPU."""
    a = torch.as_tensor(a, dtype=torch.float32).cpu()
    b = torch.as_tensor(b, dtype=torch.float32).cpu()
    if a.dim() == 1:
        a = a[None]
    if b.dim() == 1:
        b = b[None]
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T
