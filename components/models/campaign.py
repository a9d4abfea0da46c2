"""ESMM (Ma et al., SIGIR 2018) with a treatment input: who visits after an e-mail, who then
buys, and how much the e-mail itself changes that.

Shared embeddings of the customer's fields feed two towers: pCTR = P(visit) and
pCVR = P(conversion | visit). Both towers also see the arm the customer was randomised to
(one-hot), so the effect of the message is learnt as an interaction. Training uses every row
through pCTCVR = pCTR x pCVR against ``conversion`` (and pCTR against ``visit``): the CVR tower
is never fitted on the visited-only sample, whose selection bias ESMM removes. The served model
also runs the towers with each arm substituted: ``uplift`` is the mean pCTCVR over the treatment
arms minus pCTCVR in the control arm (the effect of an e-mail as the test randomised them), and
``visit_uplift`` the same for pCTR.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.config import FitSection, Section


class CampaignFeatures(Section):
    """The customer's fields, the arm column and its values, and the two outcomes."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    arm: str
    control_arm: str
    treatment_arms: tuple[str, ...]
    visit: str
    conversion: str
    slices: tuple[str, ...] = ()


class CampaignTrain(FitSection):
    embedding_dim: int
    tower_units: tuple[int, ...]
    dropout: float
    learning_rate: float
    # weight of the pCTR loss beside the pCTCVR loss (ESMM sums them)
    visit_loss_weight: float = 1.0
    min_category_count: int = 1


def non_null_columns(features: CampaignFeatures) -> list[str]:
    """The arm and both outcomes must be known on every row (a null field is a category of its own)."""
    return [features.arm, features.visit, features.conversion]


def arms(features: CampaignFeatures) -> list[str]:
    """Every arm, control first (its one-hot position is its index here)."""
    return [features.control_arm, *features.treatment_arms]


def outcome_labels(features: CampaignFeatures):
    """``labels(frame)``: the (rows, 2) int targets [visit, conversion] the stacked output learns."""
    def labels(frame: pd.DataFrame) -> np.ndarray:
        return np.stack([frame[features.visit].astype(int).to_numpy(),
                         frame[features.conversion].astype(int).to_numpy()], axis=1).astype("int32")
    return labels


def build_campaign_model(train: pd.DataFrame, features: CampaignFeatures, params: CampaignTrain, seed: int,
                         *, label: str = ""):
    """(training model, served model): both share every layer. The training model outputs
    [pCTR, pCTCVR] stacked (fitted on [visit, conversion]); the served one pctr, pcvr, pctcvr
    (in the row's arm), uplift and visit_uplift."""
    import keras

    from components.models.campaign_layers import FixedArm
    from components.models.ctr import vocabulary
    from components.models.layers import BlankAsMissing

    keras.utils.set_random_seed(seed)
    inputs, vectors = {}, []
    for column in features.categorical:
        inputs[column] = keras.Input(shape=(1,), name=column, dtype="string")
        lookup = keras.layers.StringLookup(vocabulary=vocabulary(train[column], params.min_category_count),
                                           name=f"{column}_lookup")
        embedded = keras.layers.Embedding(lookup.vocabulary_size(), params.embedding_dim, name=f"{column}_embedding")(
            lookup(BlankAsMissing(name=f"{column}_blank_as_missing")(inputs[column])))
        vectors.append(keras.layers.Flatten(name=f"{column}_vector")(embedded))
    if features.numeric:
        for column in features.numeric:
            inputs[column] = keras.Input(shape=(1,), name=column, dtype="float32")
        stacked = keras.layers.Concatenate(name="numbers")([inputs[c] for c in features.numeric])
        scale = keras.layers.Normalization(name="numbers_scale")
        scale.adapt(np.log1p(np.maximum(train[list(features.numeric)].astype("float32").to_numpy(), 0.0)))
        vectors.append(scale(keras.ops.log1p(keras.ops.maximum(stacked, 0.0))))
    shared = keras.layers.Concatenate(name="shared")(vectors) if len(vectors) > 1 else vectors[0]
    names = arms(features)
    inputs[features.arm] = keras.Input(shape=(1,), name=features.arm, dtype="string")
    # position 0 is an arm the test never had (a typo, a new e-mail): scored, never trained on
    own_arm = keras.layers.Flatten(name="arm_flat")(keras.layers.StringLookup(
        vocabulary=names, output_mode="one_hot", name="arm_one_hot")(inputs[features.arm]))

    def tower(name: str):
        layers = []
        for index, units in enumerate(params.tower_units):
            layers.append(keras.layers.Dense(units, activation="relu", name=f"{name}_{index}"))
            if params.dropout > 0:
                layers.append(keras.layers.Dropout(params.dropout, seed=seed, name=f"{name}_{index}_dropout"))
        layers.append(keras.layers.Dense(1, activation="sigmoid", name=f"{name}_probability"))
        joined = keras.layers.Concatenate(name=f"{name}_input")

        def apply(arm):
            x = joined([shared, arm])
            for layer in layers:
                x = layer(x)
            return x
        return apply

    ctr_tower, cvr_tower = tower("ctr"), tower("cvr")
    pctr, pcvr = ctr_tower(own_arm), cvr_tower(own_arm)
    pctcvr = keras.layers.Multiply(name="ctcvr")([pctr, pcvr])
    per_arm = []
    for index in range(len(names)):
        fixed = FixedArm(index + 1, len(names) + 1, name=f"arm_{index}")(inputs[features.arm])
        visit = ctr_tower(fixed)
        per_arm.append((visit, keras.layers.Multiply(name=f"ctcvr_arm_{index}")([visit, cvr_tower(fixed)])))

    def effect(position: int, name: str):
        treated = [p[position] for p in per_arm[1:]]
        mean = keras.layers.Average(name=f"{name}_treated")(treated) if len(treated) > 1 else treated[0]
        return keras.layers.Subtract(name=name)([mean, per_arm[0][position]])

    flat = keras.layers.Flatten
    served = {"pctr": flat(name="pctr")(pctr), "pcvr": flat(name="pcvr")(pcvr),
              "pctcvr": flat(name="pctcvr")(pctcvr), "uplift": flat(name="uplift_flat")(effect(1, "uplift")),
              "visit_uplift": flat(name="visit_uplift_flat")(effect(0, "visit_uplift"))}
    training = keras.Model(inputs=inputs, outputs=keras.layers.Concatenate(name="ctr_ctcvr")([pctr, pctcvr]),
                           name="campaign_esmm")
    weights = keras.ops.convert_to_tensor([[params.visit_loss_weight, 1.0]])

    def loss(y_true, y_pred):
        y_true = keras.ops.cast(y_true, y_pred.dtype)
        y_pred = keras.ops.clip(y_pred, 1e-7, 1 - 1e-7)
        per_target = -(y_true * keras.ops.log(y_pred) + (1 - y_true) * keras.ops.log(1 - y_pred))
        return keras.ops.sum(per_target * weights, axis=-1)

    training.compile(optimizer=keras.optimizers.Adam(params.learning_rate), loss=loss)
    return training, keras.Model(inputs=inputs, outputs=served, name="campaign_esmm_serving")
