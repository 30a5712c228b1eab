"""Fit the linear probe with scikit-learn and measure it on a held-out split (pure).

Multinomial logistic regression on standardised embeddings, with class weights inversely
proportional to class sizes so a big category does not drown a small one. The held-out
measures come from a model fitted without the held-out images; the exported head is then
refitted on every image, since with a few dozen examples per class each one counts.
The standardisation is folded into the head's weights, so serving is one matrix product.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from orchestrator.errors import TrainingDataError

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

#: The measures ``output.measure`` may ask for (DeepDetect's names that apply to a classifier).
MEASURES = frozenset({"acc", "f1", "precision", "recall", "mcll", "cmdiag", "cmfull", "mcc"})


@dataclass(frozen=True)
class ClassMeasures:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Evaluation:
    """Measures on the held-out images."""

    accuracy: float
    precision: float  # macro averages
    recall: float
    f1: float
    mcc: float
    log_loss: float
    per_class: tuple[ClassMeasures, ...]
    #: ``confusion[i][j]``: held-out images of class i predicted as class j.
    confusion: tuple[tuple[int, ...], ...]
    train_size: int
    test_size: int


@dataclass(frozen=True, eq=False)
class ProbeFit:
    labels: tuple[str, ...]
    weights: FloatArray  # [classes, dims]: probs = softmax(x @ weights.T + bias)
    bias: FloatArray  # [classes]
    evaluation: Evaluation | None
    iterations: int
    train_loss: float
    converged: bool


@dataclass(frozen=True)
class FitOptions:
    test_split: float = 0.2
    shuffle: bool = True
    seed: int | None = 0
    regularisation: float = 1.0  # scikit-learn's C
    max_iter: int = 2000


def _fit(
    x: FloatArray, y: IntArray, classes: int, options: FitOptions
) -> tuple[FloatArray, FloatArray, int, bool]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std < 1e-6] = 1.0
    model = LogisticRegression(
        C=options.regularisation, class_weight="balanced", max_iter=options.max_iter
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit((x - mean) / std, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    coef = model.coef_.astype(np.float64)
    intercept = model.intercept_.astype(np.float64)
    if coef.shape[0] == 1 and classes == 2:
        # Binary problems come back as one logit; two logits ±z/2 give the same sigmoid.
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    weights = coef / std
    bias = intercept - weights @ mean
    return (
        weights.astype(np.float32),
        bias.astype(np.float32),
        int(np.max(model.n_iter_)),
        converged,
    )


def predict_probs(weights: FloatArray, bias: FloatArray, x: FloatArray) -> FloatArray:
    """What the exported head computes: softmax(x · Wᵀ + b) (pure)."""
    logits = x.astype(np.float64) @ weights.T.astype(np.float64) + bias
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    probs: FloatArray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return probs


def _log_loss(probs: FloatArray, y: IntArray) -> float:
    picked = np.clip(probs[np.arange(len(y)), y], 1e-15, 1.0)
    return float(-np.mean(np.log(picked)))


def evaluate(
    labels: Sequence[str], y_true: IntArray, probs: FloatArray, train_size: int
) -> Evaluation:
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        matthews_corrcoef,
        precision_recall_fscore_support,
    )

    indices = list(range(len(labels)))
    y_pred = probs.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=indices, zero_division=0
    )
    return Evaluation(
        accuracy=float(accuracy_score(y_true, y_pred)),
        precision=float(np.mean(precision)),
        recall=float(np.mean(recall)),
        f1=float(np.mean(f1)),
        mcc=float(matthews_corrcoef(y_true, y_pred)),
        log_loss=_log_loss(probs, y_true),
        per_class=tuple(
            ClassMeasures(label, float(p), float(r), float(f), int(s))
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        ),
        confusion=tuple(
            tuple(int(v) for v in row) for row in confusion_matrix(y_true, y_pred, labels=indices)
        ),
        train_size=train_size,
        test_size=len(y_true),
    )


def _split(y: IntArray, classes: int, options: FitOptions) -> tuple[IntArray, IntArray]:
    """Indices of the training and held-out parts, stratified so each class is in both."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(y))
    try:
        train, test = train_test_split(
            indices,
            test_size=options.test_split,
            shuffle=options.shuffle,
            random_state=options.seed,
            stratify=y if options.shuffle else None,
        )
    except ValueError as e:
        raise TrainingDataError(
            f"test_split {options.test_split:g} of {len(y)} images cannot hold out at least one "
            f"image of each of the {classes} classes and keep the rest for training ({e}); "
            "add images or change test_split"
        ) from e
    return np.asarray(train), np.asarray(test)


def fit_probe(
    embeddings: FloatArray, targets: IntArray, labels: Sequence[str], options: FitOptions
) -> ProbeFit:
    """Fit, evaluate on the held-out part (when ``test_split`` > 0), refit on everything.

    Raises:
        TrainingDataError: a class has no example, or the split cannot keep every class.
    """
    classes = len(labels)
    if not 0.0 <= options.test_split < 1.0:
        raise TrainingDataError(
            f"test_split must be at least 0 and below 1, not {options.test_split}"
        )
    present = set(np.unique(targets).tolist())
    missing = [labels[i] for i in range(classes) if i not in present]
    if missing or classes < 2:
        raise TrainingDataError(
            f"classes without any image: {', '.join(missing) or 'none'}; "
            f"a classifier needs two or more classes with images (got {len(present)})"
        )
    evaluation = None
    if options.test_split > 0:
        train, test = _split(targets, classes, options)
        w, b, _, _ = _fit(embeddings[train], targets[train], classes, options)
        evaluation = evaluate(
            labels, targets[test], predict_probs(w, b, embeddings[test]), len(train)
        )
    weights, bias, iterations, converged = _fit(embeddings, targets, classes, options)
    train_loss = _log_loss(predict_probs(weights, bias, embeddings), targets)
    return ProbeFit(tuple(labels), weights, bias, evaluation, iterations, train_loss, converged)
