"""Multi-treatment uplift network in Keras: a shared tabular tower and sequence encoder, one head per strategy.

The network reads two inputs: the standardised numeric features (a Dense tower) and the customer's
recent event tokens (a one-block Transformer encoder with masked average pooling). Their
concatenation feeds one small head per strategy, each giving a conversion logit and, when a revenue
target is given, a log1p(order value) estimate learnt on converted rows (expected revenue is
p_convert x order value). A row's loss reaches only the head of the strategy it
was logged under (the loss gathers that column), so every head learns its own response surface
from its own arm while all arms share the representation: predicting all heads for a customer
gives the response under every strategy, and the difference to control the uplift.

TensorFlow and Keras load only when a model is built, fitted or loaded; the Keras layers and
losses are defined (and registered for ``model.keras`` files, package ``msp``) on first use.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator

from jobs.models.frame import CONTROL, SEQUENCE_COLUMN, STRATEGIES

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

PAD_TOKEN = 0
UNKNOWN_TOKEN = 1
PREDICT_BATCH = 4096
MODEL_FILE = "model.keras"
META_FILE = "meta.json"


def parse_tokens(values: Any, seq_len: int, vocab_size: int) -> np.ndarray:
    """Space-separated token ids -> (n, seq_len) int32, left-padded with 0 and keeping the most recent ids.

    Ids outside ``[0, vocab_size)`` become 1 (unknown); 0 stays padding. Missing values are empty sequences.
    """
    import pandas as pd

    texts = pd.Series(values, dtype="object").fillna("").astype(str)
    parts = texts.str.split()
    lengths = parts.str.len().to_numpy(dtype=np.int64)
    n = len(texts)
    out = np.zeros((n, seq_len), dtype=np.int32)
    total = int(lengths.sum())
    if total == 0 or seq_len == 0:
        return out
    try:
        flat = np.array(" ".join(texts.tolist()).split(), dtype=np.int64)
    except ValueError as exc:
        raise ValueError(f"sequence tokens must be space-separated integers: {exc}") from None
    flat[(flat < 0) | (flat >= vocab_size)] = UNKNOWN_TOKEN
    rows = np.repeat(np.arange(n), lengths)
    ends = np.repeat(np.cumsum(lengths), lengths)
    from_end = ends - 1 - np.arange(total)  # 0 for each row's most recent token
    keep = from_end < seq_len
    out[rows[keep], seq_len - 1 - from_end[keep]] = flat[keep]
    return out


@functools.cache
def keras_parts() -> SimpleNamespace:
    """Import Keras and define (once) the registered custom layers and losses."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    from keras import layers, ops

    register = keras.saving.register_keras_serializable(package="msp")

    @register
    class TokenPositionEmbedding(layers.Layer):
        """Token embedding plus a learned embedding of the position (left padding: last slot = most recent)."""

        def __init__(self, vocab_size: int, seq_len: int, embed_dim: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.vocab_size = vocab_size
            self.seq_len = seq_len
            self.embed_dim = embed_dim
            self.token = layers.Embedding(vocab_size, embed_dim, name="token")
            self.position = layers.Embedding(seq_len, embed_dim, name="position")

        def build(self, input_shape: Any) -> None:
            self.token.build(input_shape)
            self.position.build((self.seq_len,))

        def call(self, tokens: Any) -> Any:
            return self.token(tokens) + ops.expand_dims(self.position(ops.arange(self.seq_len)), 0)

        def compute_output_shape(self, input_shape: Any) -> tuple:
            return (*input_shape, self.embed_dim)

        def get_config(self) -> dict[str, Any]:
            return {
                **super().get_config(),
                "vocab_size": self.vocab_size,
                "seq_len": self.seq_len,
                "embed_dim": self.embed_dim,
            }

    @register
    class TransformerEncoderBlock(layers.Layer):
        """Self-attention over non-padding tokens with residual + LayerNorm, then a residual feed-forward block.

        Called on ``[embeddings, tokens]``; token id 0 marks padding (masked as attention keys).
        """

        def __init__(self, embed_dim: int, num_heads: int, ff_dim: int, dropout: float = 0.0, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.embed_dim = embed_dim
            self.num_heads = num_heads
            self.ff_dim = ff_dim
            self.dropout = dropout
            self.attention = layers.MultiHeadAttention(
                num_heads, key_dim=max(1, embed_dim // num_heads), dropout=dropout, name="attention"
            )
            self.attention_dropout = layers.Dropout(dropout)
            self.attention_norm = layers.LayerNormalization(epsilon=1e-6, name="attention_norm")
            self.ff_hidden = layers.Dense(ff_dim, activation="relu", name="ff_hidden")
            self.ff_out = layers.Dense(embed_dim, name="ff_out")
            self.ff_dropout = layers.Dropout(dropout)
            self.ff_norm = layers.LayerNormalization(epsilon=1e-6, name="ff_norm")

        def build(self, input_shape: Any) -> None:
            shape = tuple(input_shape[0])
            self.attention.build(shape, shape)
            self.attention_norm.build(shape)
            self.ff_hidden.build(shape)
            self.ff_out.build((*shape[:-1], self.ff_dim))
            self.ff_norm.build(shape)

        def call(self, inputs: Any, training: bool | None = None) -> Any:
            x, tokens = inputs
            keys = ops.not_equal(tokens, PAD_TOKEN)
            mask = ops.repeat(ops.expand_dims(keys, 1), ops.shape(x)[1], axis=1)  # (batch, query, key)
            attended = self.attention(x, x, attention_mask=mask, training=training)
            x = self.attention_norm(x + self.attention_dropout(attended, training=training))
            fed = self.ff_out(self.ff_hidden(x))
            return self.ff_norm(x + self.ff_dropout(fed, training=training))

        def compute_output_shape(self, input_shape: Any) -> tuple:
            return tuple(input_shape[0])

        def get_config(self) -> dict[str, Any]:
            return {
                **super().get_config(),
                "embed_dim": self.embed_dim,
                "num_heads": self.num_heads,
                "ff_dim": self.ff_dim,
                "dropout": self.dropout,
            }

    @register
    class MaskedAveragePooling(layers.Layer):
        """Mean over the non-padding positions of ``[sequence, tokens]`` (zeros for an empty sequence)."""

        def call(self, inputs: Any) -> Any:
            x, tokens = inputs
            weights = ops.expand_dims(ops.cast(ops.not_equal(tokens, PAD_TOKEN), x.dtype), -1)
            total = ops.sum(x * weights, axis=1)
            return total / ops.maximum(ops.sum(weights, axis=1), 1.0)

        def compute_output_shape(self, input_shape: Any) -> tuple:
            shape = tuple(input_shape[0])
            return (shape[0], shape[2])

    def gathered(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
        """``y_true`` = [strategy index, target] per row -> (target, that strategy's column of ``y_pred``)."""
        index = ops.cast(y_true[:, 0], "int32")
        picked = ops.take_along_axis(y_pred, ops.expand_dims(index, 1), axis=1)[:, 0]
        return ops.cast(y_true[:, 1], y_pred.dtype), picked

    @register
    class GatheredBinaryCrossentropy(keras.losses.Loss):
        """Binary cross-entropy on the logit of each row's logged strategy only."""

        def __init__(self, name: str = "gathered_binary_crossentropy", **kwargs: Any) -> None:
            super().__init__(name=name, **kwargs)

        def call(self, y_true: Any, y_pred: Any) -> Any:
            label, logit = gathered(y_true, y_pred)
            return ops.binary_crossentropy(label, logit, from_logits=True)

    @register
    class GatheredHuber(keras.losses.Loss):
        """Huber loss on the output of each row's logged strategy only."""

        def __init__(self, delta: float = 1.0, name: str = "gathered_huber", **kwargs: Any) -> None:
            super().__init__(name=name, **kwargs)
            self.delta = delta

        def call(self, y_true: Any, y_pred: Any) -> Any:
            target, pred = gathered(y_true, y_pred)
            error = ops.abs(pred - target)
            quadratic = ops.minimum(error, self.delta)
            loss = 0.5 * ops.square(quadratic) + self.delta * (error - quadratic)
            if y_true.shape[-1] is not None and y_true.shape[-1] > 2:  # a third column masks rows out
                loss = loss * ops.cast(y_true[:, 2], loss.dtype)
            return loss

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "delta": self.delta}

    return SimpleNamespace(
        keras=keras,
        TokenPositionEmbedding=TokenPositionEmbedding,
        TransformerEncoderBlock=TransformerEncoderBlock,
        MaskedAveragePooling=MaskedAveragePooling,
        GatheredBinaryCrossentropy=GatheredBinaryCrossentropy,
        GatheredHuber=GatheredHuber,
    )


def head_name(strategy: str) -> str:
    """Prefix of a strategy's head layers in the Keras model (``<prefix>_hidden``, ``_conversion``, ``_revenue``)."""
    return "head_" + re.sub(r"[^0-9A-Za-z_]", "_", strategy)


class KerasMultiHeadUplift(BaseEstimator):
    """Multi-treatment uplift network: shared tabular tower + Transformer sequence encoder, one head per strategy.

    ``X`` is a DataFrame of numeric feature columns plus ``sequence_column`` (space-separated token
    ids, most recent last). ``fit(X, y, treatment, sample_weight=None, revenue=None)`` trains each
    row on its logged strategy's head only; ``predict_conversion`` / ``predict_revenue`` /
    ``predict_uplift`` return (n, K) arrays in the column order ``strategies_``.

    Fitted: ``model_`` (keras.Model), ``history_`` (per-epoch losses), ``strategies_``, ``feature_names_``,
    ``mean_`` / ``scale_`` (standardisation), ``n_epochs_`` (epochs run), ``best_epoch_`` (1-based epoch
    whose weights were restored), ``revenue_fitted_``, ``fit_seconds_``.
    """

    def __init__(
        self,
        strategies: Sequence[str] = STRATEGIES,
        sequence_column: str = SEQUENCE_COLUMN,
        seq_len: int = 20,
        vocab_size: int = 128,
        embed_dim: int = 32,
        num_heads: int = 2,
        ff_dim: int = 64,
        tower_units: tuple[int, ...] = (128, 64),
        head_units: int = 32,
        dropout: float = 0.1,
        learning_rate: float = 1e-3,
        batch_size: int = 512,
        max_epochs: int = 30,
        patience: int = 4,
        validation_fraction: float = 0.2,
        revenue_loss_weight: float = 0.5,
        random_state: int = 0,
        verbose: int = 0,
    ) -> None:
        self.strategies = strategies
        self.sequence_column = sequence_column
        self.seq_len = seq_len
        self.vocab_size = vocab_size
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.ff_dim = ff_dim
        self.tower_units = tower_units
        self.head_units = head_units
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.revenue_loss_weight = revenue_loss_weight
        self.random_state = random_state
        self.verbose = verbose

    # --- training ---
    def fit(
        self,
        X: pd.DataFrame,
        y: Any,
        treatment: Any,
        sample_weight: Any = None,
        revenue: Any = None,
    ) -> KerasMultiHeadUplift:
        """Train on logged rows: conversion ``y`` (0/1), logged ``treatment`` names, optional weights and revenue.

        ``sample_weight`` (e.g. inverse propensities) is rescaled to mean 1; ``revenue`` (non-negative)
        adds a log1p(revenue) output per head, needed for :meth:`predict_revenue`.
        """
        started = time.perf_counter()
        strategies = tuple(str(s) for s in self.strategies)
        if len(strategies) < 2 or len(set(strategies)) != len(strategies):
            raise ValueError(f"strategies must be at least two distinct names, got {strategies}")
        if len({head_name(s) for s in strategies}) != len(strategies):
            raise ValueError(f"strategy names collide as Keras layer names: {strategies}")
        n = len(X)
        y = np.asarray(y, dtype="float64").reshape(-1)
        treatment = np.asarray(treatment).astype(str).reshape(-1)
        if not (len(y) == len(treatment) == n):
            raise ValueError(f"X, y and treatment differ in length: {n}, {len(y)}, {len(treatment)}")
        if n == 0:
            raise ValueError("cannot fit on zero rows")
        if unknown := sorted(set(treatment.tolist()) - set(strategies)):
            raise ValueError(f"treatment names unknown strategies {unknown[:5]}; known: {list(strategies)}")
        if not np.isin(y, (0.0, 1.0)).all():
            raise ValueError("y must be 0/1 conversion labels")
        weights = _weights(sample_weight, n)
        log_revenue = None
        if revenue is not None:
            rev = np.asarray(revenue, dtype="float64").reshape(-1)
            if len(rev) != n or not np.isfinite(rev).all() or (rev < 0).any():
                raise ValueError("revenue must be finite, non-negative and one value per row")
            log_revenue = np.log1p(rev)
            converted = rev > 0

        self.strategies_ = strategies
        self.feature_names_ = self._feature_columns(X)
        numeric = self._numeric(X, self.feature_names_)
        with np.errstate(all="ignore"):
            mean = np.nanmean(numeric, axis=0)
            scale = np.nanstd(numeric, axis=0)
        self.mean_ = np.where(np.isfinite(mean), mean, 0.0)
        self.scale_ = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        inputs = self._inputs(X)

        index = _indices(treatment, strategies)
        targets = {"conversion": np.column_stack([index, y]).astype("float32")}
        if log_revenue is not None:
            # the revenue head learns the order value of converted rows (log1p); expected revenue is
            # p_convert x that value, so the head never has to predict the zeros of non-buyers
            targets["revenue"] = np.column_stack([index, log_revenue, converted]).astype("float32")

        valid = _validation_mask(treatment, self.validation_fraction, self.random_state)
        train = ~valid

        def rows(mask: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
            return (
                {k: v[mask] for k, v in inputs.items()},
                {k: v[mask] for k, v in targets.items()},
                weights[mask].astype("float32"),
            )

        parts = keras_parts()
        keras = parts.keras
        model = self._build_model(len(self.feature_names_), with_revenue=log_revenue is not None)
        losses: dict[str, Any] = {"conversion": parts.GatheredBinaryCrossentropy()}
        loss_weights = {"conversion": 1.0}
        if log_revenue is not None:
            losses["revenue"] = parts.GatheredHuber()
            loss_weights["revenue"] = float(self.revenue_loss_weight)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=self.learning_rate),
            loss=losses,
            loss_weights=loss_weights,
        )
        x_train, y_train, w_train = rows(train)
        monitor = "val_loss" if valid.any() else "loss"
        stopper = keras.callbacks.EarlyStopping(
            monitor=monitor, patience=self.patience, restore_best_weights=True, mode="min"
        )
        history = model.fit(
            x_train,
            y_train,
            sample_weight=w_train,
            validation_data=rows(valid) if valid.any() else None,
            batch_size=self.batch_size,
            epochs=self.max_epochs,
            shuffle=True,
            callbacks=[stopper],
            verbose=self.verbose,
        )
        self.model_ = model
        self.revenue_fitted_ = log_revenue is not None
        self.revenue_smearing_ = 1.0
        if log_revenue is not None and converted.any():
            # Duan's smearing: E[1 + value] = exp(prediction) x mean(exp(residual)) on converted rows
            raw = model.predict({k: v[converted] for k, v in inputs.items()}, batch_size=PREDICT_BATCH, verbose=0)
            pred = np.asarray(raw["revenue"], dtype="float64")[np.arange(int(converted.sum())), index[converted]]
            self.revenue_smearing_ = float(np.mean(np.exp(log_revenue[converted] - pred)))
        self.history_ = {k: [float(v) for v in values] for k, values in history.history.items()}
        self.n_epochs_ = len(self.history_.get("loss", []))
        self.best_epoch_ = int(stopper.best_epoch) + 1 if stopper.best is not None else self.n_epochs_
        self.fit_seconds_ = time.perf_counter() - started
        log.info(
            "keras uplift: %d rows (%d validation), %d epochs, best epoch %d (%s %.4f), %.1f s",
            n,
            int(valid.sum()),
            self.n_epochs_,
            self.best_epoch_,
            monitor,
            float(stopper.best) if stopper.best is not None else float("nan"),
            self.fit_seconds_,
        )
        return self

    def _build_model(self, n_features: int, with_revenue: bool) -> Any:
        """The untrained network, its weights seeded from ``random_state`` (each call gives the same weights)."""
        parts = keras_parts()
        keras = parts.keras
        layers = keras.layers
        keras.utils.set_random_seed(int(self.random_state))
        numeric_in = keras.Input(shape=(n_features,), dtype="float32", name="numeric")
        tokens_in = keras.Input(shape=(self.seq_len,), dtype="int32", name="tokens")

        tower = numeric_in
        for i, units in enumerate(self.tower_units):
            tower = layers.Dense(units, activation="relu", name=f"tower_{i}")(tower)
            tower = layers.Dropout(self.dropout, name=f"tower_{i}_dropout")(tower)

        embedded = parts.TokenPositionEmbedding(self.vocab_size, self.seq_len, self.embed_dim, name="embedding")(
            tokens_in
        )
        encoded = parts.TransformerEncoderBlock(
            self.embed_dim, self.num_heads, self.ff_dim, self.dropout, name="encoder"
        )([embedded, tokens_in])
        pooled = parts.MaskedAveragePooling(name="pooling")([encoded, tokens_in])
        shared = layers.Concatenate(name="shared")([tower, pooled])

        # Every head adds its correction to a shared base output that all rows train (as the XGBoost
        # T-learner's shared base): a head's correction starts at exactly 0 (zero-initialised output
        # layer) and grows only as far as its own arm's rows, under early stopping, support it.
        base_hidden = layers.Dense(self.head_units, activation="relu", name="base_hidden")(shared)
        base_conversion = layers.Dense(1, name="base_conversion")(base_hidden)
        base_revenue = layers.Dense(1, name="base_revenue")(base_hidden) if with_revenue else None
        conversion, revenue = [], []
        for strategy in self.strategies_:
            prefix = head_name(strategy)
            hidden = layers.Dense(self.head_units, activation="relu", name=f"{prefix}_hidden")(shared)
            correction = layers.Dense(1, kernel_initializer="zeros", name=f"{prefix}_conversion")(hidden)
            conversion.append(layers.Add(name=f"{prefix}_conversion_total")([base_conversion, correction]))
            if with_revenue:
                correction = layers.Dense(1, kernel_initializer="zeros", name=f"{prefix}_revenue")(hidden)
                revenue.append(layers.Add(name=f"{prefix}_revenue_total")([base_revenue, correction]))
        outputs = {"conversion": layers.Concatenate(name="conversion")(conversion)}
        if with_revenue:
            outputs["revenue"] = layers.Concatenate(name="revenue")(revenue)
        return keras.Model({"numeric": numeric_in, "tokens": tokens_in}, outputs, name="multi_head_uplift")

    # --- prediction ---
    def predict_conversion(self, X: pd.DataFrame) -> np.ndarray:
        """(n, K) conversion probability of every row under every strategy."""
        logits = self._raw(X)["conversion"]
        return 0.5 * (1.0 + np.tanh(0.5 * logits))  # the logistic function, without overflow

    def predict_order_value(self, X: pd.DataFrame) -> np.ndarray:
        """(n, K) expected net order value given conversion under every strategy (smearing-corrected)."""
        self._check_fitted()
        if not self.revenue_fitted_:
            raise ValueError("this model was fitted without a revenue target")
        return np.clip(np.exp(self._raw(X)["revenue"]) * self.revenue_smearing_ - 1.0, 0.0, None)

    def predict_revenue(self, X: pd.DataFrame) -> np.ndarray:
        """(n, K) expected revenue in the window under every strategy: p_convert x order value."""
        raw = self._raw(X)
        if not self.revenue_fitted_:
            raise ValueError("this model was fitted without a revenue target")
        value = np.clip(np.exp(raw["revenue"]) * self.revenue_smearing_ - 1.0, 0.0, None)
        return 0.5 * (1.0 + np.tanh(0.5 * raw["conversion"])) * value

    def predict_uplift(self, X: pd.DataFrame, control: str = CONTROL) -> np.ndarray:
        """(n, K) conversion probability under each strategy minus that under ``control``."""
        self._check_fitted()
        if control not in self.strategies_:
            raise ValueError(f"control {control!r} is not one of {list(self.strategies_)}")
        pred = self.predict_conversion(X)
        return pred - pred[:, [self.strategies_.index(control)]]

    def _raw(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        self._check_fitted()
        inputs = self._inputs(X)
        if len(X) == 0:
            k = len(self.strategies_)
            return {"conversion": np.zeros((0, k)), "revenue": np.zeros((0, k))}
        out = self.model_.predict(inputs, batch_size=max(self.batch_size, PREDICT_BATCH), verbose=0)
        return {k: np.asarray(v, dtype="float64") for k, v in out.items()}

    # --- inputs ---
    def _feature_columns(self, X: pd.DataFrame) -> list[str]:
        from pandas.api.types import is_numeric_dtype

        if not hasattr(X, "columns"):
            raise TypeError("X must be a pandas DataFrame")
        if self.sequence_column not in X.columns:
            raise ValueError(f"X lacks the sequence column {self.sequence_column!r}")
        names = [str(c) for c in X.columns if c != self.sequence_column]
        if len(set(names)) != len(names):
            raise ValueError("feature column names must be unique")
        if bad := [str(c) for c in X.columns if c != self.sequence_column and not is_numeric_dtype(X[c])]:
            raise ValueError(f"feature columns must be numeric: {bad[:5]}")
        return names

    @staticmethod
    def _numeric(X: pd.DataFrame, names: list[str]) -> np.ndarray:
        """The named columns (matched by their string form) as float64, non-finite values as NaN."""
        columns = {str(c): c for c in X.columns}
        if missing := [c for c in names if c not in columns]:
            raise ValueError(f"X lacks feature columns {missing[:5]}")
        if not names:
            return np.zeros((len(X), 0))
        values = X[[columns[c] for c in names]].to_numpy(dtype="float64", na_value=np.nan)
        values[~np.isfinite(values)] = np.nan
        return values

    def _inputs(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """Model inputs: standardised numeric features (NaN -> 0) and the padded token matrix."""
        if self.sequence_column not in X.columns:
            raise ValueError(f"X lacks the sequence column {self.sequence_column!r}")
        numeric = (self._numeric(X, self.feature_names_) - self.mean_) / self.scale_
        return {
            "numeric": np.nan_to_num(numeric, nan=0.0).astype("float32"),
            "tokens": parse_tokens(X[self.sequence_column].to_numpy(), self.seq_len, self.vocab_size),
        }

    # --- persistence ---
    def save(self, path: str | Path) -> None:
        """Write a folder with ``model.keras`` and ``meta.json`` (parameters, scaling, strategies, history)."""
        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.model_.save(folder / MODEL_FILE)
        params = self.get_params()
        params["strategies"] = list(self.strategies)
        params["tower_units"] = list(self.tower_units)
        meta = {
            "params": params,
            "strategies_": list(self.strategies_),
            "feature_names_": self.feature_names_,
            "mean_": self.mean_.tolist(),
            "scale_": self.scale_.tolist(),
            "revenue_fitted_": self.revenue_fitted_,
            "revenue_smearing_": self.revenue_smearing_,
            "history_": self.history_,
            "n_epochs_": self.n_epochs_,
            "best_epoch_": self.best_epoch_,
            "fit_seconds_": self.fit_seconds_,
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: str | Path) -> KerasMultiHeadUplift:
        """The estimator written by :meth:`save` (the Keras model is loaded without its optimizer)."""
        folder = Path(path)
        meta = json.loads((folder / META_FILE).read_text())
        params = dict(meta["params"])
        params["strategies"] = tuple(params["strategies"])
        params["tower_units"] = tuple(params["tower_units"])
        est = cls(**params)
        est.strategies_ = tuple(meta["strategies_"])
        est.feature_names_ = list(meta["feature_names_"])
        est.mean_ = np.asarray(meta["mean_"], dtype="float64")
        est.scale_ = np.asarray(meta["scale_"], dtype="float64")
        est.revenue_fitted_ = bool(meta["revenue_fitted_"])
        est.revenue_smearing_ = float(meta.get("revenue_smearing_", 1.0))
        est.history_ = {k: list(v) for k, v in meta["history_"].items()}
        est.n_epochs_ = int(meta["n_epochs_"])
        est.best_epoch_ = int(meta["best_epoch_"])
        est.fit_seconds_ = float(meta.get("fit_seconds_", 0.0))
        parts = keras_parts()
        est.model_ = parts.keras.saving.load_model(folder / MODEL_FILE, compile=False)
        return est

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call fit first")


def _indices(treatment: np.ndarray, strategies: tuple[str, ...]) -> np.ndarray:
    """Each row's strategy position in ``strategies`` (all names already checked to be known)."""
    lookup = {s: i for i, s in enumerate(strategies)}
    names, inverse = np.unique(treatment, return_inverse=True)
    return np.array([lookup[s] for s in names], dtype=np.int64)[inverse]


def _weights(sample_weight: Any, n: int) -> np.ndarray:
    """Sample weights scaled to mean 1 (all ones when absent); zero weights stay zero."""
    if sample_weight is None:
        return np.ones(n)
    w = np.asarray(sample_weight, dtype="float64").reshape(-1)
    if len(w) != n or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight must be finite, non-negative and one value per row")
    if w.sum() <= 0:
        raise ValueError("sample_weight is zero everywhere")
    return w / w.mean()


def _validation_mask(treatment: np.ndarray, fraction: float, random_state: int) -> np.ndarray:
    """Boolean validation rows: ``fraction`` of each strategy's rows (none for strategies with < 4 rows)."""
    mask = np.zeros(len(treatment), dtype=bool)
    if fraction <= 0:
        return mask
    rng = np.random.default_rng(random_state)
    for value in np.unique(treatment):
        idx = np.flatnonzero(treatment == value)
        if len(idx) < 4:
            continue
        take = min(max(round(len(idx) * fraction), 1), len(idx) - 1)
        mask[rng.choice(idx, size=take, replace=False)] = True
    return mask
