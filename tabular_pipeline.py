# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "cloudpickle==3.1.3",
#     "flatbuffers==25.12.19",
#     "joblib==1.6.0",
#     "ml_dtypes==0.6.0",
#     "narwhals==2.29.0",
#     "numpy==2.4.6",
#     "onnx==1.23.2",
#     "onnxruntime==1.32.0",
#     "packaging==26.4",
#     "pandas==3.1.1",
#     "protobuf==7.36.2",
#     "python-dateutil==4.0.0",
#     "scikit-learn==1.9.1",
#     "scipy==1.17.1",
#     "skl2onnx==1.20.0",
#     "threadpoolctl==3.8.0",
#     "typing_extensions==4.16.0",
#     "tzdata==2026.6",
# ]
# ///
"""A real table in ONNX: numbers with gaps, categories as strings, and a converter of our own.

Real tables have gaps, strings, categories that training never saw, and steps no converter knows.
This lesson builds one (pandas, seeded, no download), trains a scikit-learn pipeline on it and
serves that pipeline with ONNX Runtime alone, one ONNX input per column:

    age, income, debt (float)  -> impute, scale ---------------------.
    debt, income (float)       -> impute, DebtToIncome (ours), scale -+-> LogisticRegression
    region, housing, channel   -> fill, one-hot (unseen: all zeros) -'    -> label, probabilities

1. Build the table, 2. train, 3. convert with ``to_onnx``: skl2onnx first refuses DebtToIncome
   (MissingShapeCalculator), then uses the shape calculator and converter we register (Split, Div).
4. Check, 5. save a draft (``onnx.save_model``), 6. load it into ONNX Runtime, 7. verify it against
   scikit-learn on held-out rows, an all-missing row and unseen categories. Only a verified draft
   becomes ``<output-dir>/tabular_pipeline.onnx``; a mismatch exits 1 and publishes nothing.

    python tabular_pipeline.py          # 2000 rows, seed 0; prints what each step finds
    python tabular_pipeline.py --rows 500 --seed 7 --output-dir /tmp/models
"""

from __future__ import annotations

import os
import signal
import sys

# Ctrl-C (or SIGTERM, SIGHUP) while the libraries below import, or after main() has returned:
# one line and status 128 + the signal's number. main() handles every signal in between.
STOPPED: list[int] = []  # the signals that stopped this run; see the plumbing block at the end
if __name__ == "__main__":

    def stop_at_once(signum: int, frame: object) -> None:
        if not STOPPED:  # main() has not said it already
            print(
                "error: interrupted" if signum == signal.SIGINT else "error: terminated",
                file=sys.stderr,
            )
        os._exit(128 + signum)

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), stop_at_once)

import argparse
import contextlib
import errno
import functools
import secrets
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np  # the deployment side (predict_frame) needs only these three;
import onnxruntime as ort  # the training side's libraries are imported at step 2
import pandas as pd

# Opsets as in sklearn_converter.py: skl2onnx imports only the versions the graph needs, at most
# these. Opset 22 with IR version 10: what the pinned onnxruntime (and 1.21 or later) loads.
TARGET_OPSET = {"": 22, "ai.onnx.ml": 3}
IR_VERSION = 10
MODEL_FILE = "tabular_pipeline.onnx"
DEFAULT_ROWS, MIN_ROWS, MAX_ROWS = 2000, 100, 10_000_000  # a run needs ~0.6 KB of memory a row
TEST_SIZE = 0.25  # the held-out share of the rows
NUMBER_COLUMNS = ["age", "income", "debt"]  # years, thousands a year, thousands
CATEGORY_COLUMNS = ["region", "housing", "channel"]
# A missing category crosses into the model as this string: pandas 3 marks it with NaN, a float,
# which an ONNX string tensor cannot hold (pitfalls 1 and 2 in docs/tabular_pipeline.md).
MISSING_CATEGORY = ""
UNSEEN = {"region": "overseas", "housing": "houseboat", "channel": "kiosk"}  # never in training
ATOL = 1e-5  # probabilities, ONNX Runtime's float32 against scikit-learn's float64: see compare()


def lesson(args: argparse.Namespace) -> None:
    """Build, train, convert, check, save, load, run and verify; publish only a verified model."""
    print(f"Loan applications: {args.rows} synthetic rows, seed {args.seed}")
    print("\n1. Build the table with pandas (seeded, no download)")
    frame, target, probability = make_table(args.rows, args.seed)
    describe_table(frame, target)
    print(f"\n2. Train on {1 - TEST_SIZE:.0%} of the rows; hold out the rest")
    pipeline, train_frame, test_frame = train(frame, target, probability, args.seed)
    print("\n3. Convert with skl2onnx, the table's first row as the example")
    example = fill_missing_categories(train_frame[:1])
    print("   before registering DebtToIncome: " + show_missing_converter(pipeline, example))
    register_debt_to_income()
    model = convert(pipeline, example)
    print("   registered its shape calculator and converter (Split, Div); converted again")
    print("\n4. Check")
    onnx.checker.check_model(model, full_check=True)  # the structure, and every type and shape
    describe_model(model)
    path = args.output_dir / MODEL_FILE
    print(f"\n5. Save a draft beside {path}, hidden until it is verified")
    with publish(path) as draft:
        onnx.save_model(model, draft)
        print("   onnx.save_model(model, draft): written, not yet published")
        print("\n6. Load the draft from disk into ONNX Runtime, once (the deployment side)")
        session = load_session(draft)
        print(f"   get_inputs()[0].shape is {session.get_inputs()[0].shape}: None is the ? above")
        print(f"\n7. Run and verify against scikit-learn (probabilities within atol={ATOL:g})")
        verify(session, pipeline, "held-out rows", test_frame, train_frame)
        new = edge_rows()
        show_new_rows(pipeline, new, verify(session, pipeline, "new rows", new, train_frame))
    print(f"   verified, so the draft is published: {path} ({path.stat().st_size} bytes)")
    print(f"\nVerified: {path} agrees with scikit-learn on every row.")
    libraries = {"numpy": np, "onnx": onnx, "onnxruntime": ort, "pandas": pd}
    libraries |= {"scikit-learn": sklearn, "skl2onnx": skl2onnx}
    shown = ", ".join(f"{name} {module.__version__}" for name, module in libraries.items())
    print(f"Versions: Python {sys.version.split()[0]}, {shown}")


# --- 1. Build: the table -------------------------------------------------------------------------
def make_table(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Return loan applications, the default label, and the true rule's probability of default."""
    rng = np.random.default_rng(seed)
    age, income = rng.uniform(18.0, 75.0, rows), rng.lognormal(np.log(45.0), 0.5, rows)
    ratio = rng.gamma(2.0, 0.2, rows)  # debt-to-income, mean 0.4
    region = rng.choice(["north", "south", "east", "west"], rows)
    housing = rng.choice(["rent", "own", "mortgage"], rows, p=[0.4, 0.25, 0.35])
    channels, shares = ["web", "branch", "phone", "partner", "fax"], [0.6, 0.27, 0.1, 0.02, 0.01]
    channel = rng.choice(channels, rows, p=shares)
    # The known rule (log-odds of default). Region plays no part: the model should learn to ignore
    # it. The ratio matters most, and a linear model cannot form a ratio from debt and income.
    log_odds = -1.0 + 4.0 * (ratio - 0.4) - 0.03 * (age - 45.0) + 0.8 * (housing == "rent")
    log_odds = log_odds - 0.6 * (housing == "own") + 1.0 * (channel == "partner")
    probability = 1.0 / (1.0 + np.exp(-log_odds))
    target = (rng.random(rows) < probability).astype(np.int64)
    # float32 numbers: ONNX Runtime computes in float32, so both sides read the same numbers.
    numbers = pd.DataFrame({"age": age, "income": income, "debt": income * ratio}, dtype=np.float32)
    frame = numbers.assign(region=region, housing=housing, channel=channel)
    # Gaps, after the rule has used the true values: what a real form leaves blank.
    for column, share in (("age", 0.05), ("income", 0.08), ("region", 0.06), ("housing", 0.1)):
        frame.loc[rng.random(rows) < share, column] = np.nan
    return frame, target, probability


def edge_rows() -> pd.DataFrame:
    """Return three new applications: every value missing, a new channel, nothing seen before."""
    nan, kiosk = np.nan, UNSEEN["channel"]
    numbers = {"age": [nan, 35, nan], "income": [nan, 40, nan], "debt": [nan, 20, 30]}
    region, housing = [nan, "north", UNSEEN["region"]], [nan, "rent", UNSEEN["housing"]]
    categories = {"region": region, "housing": housing, "channel": [nan, kiosk, kiosk]}
    return pd.DataFrame(numbers, dtype=np.float32).join(pd.DataFrame(categories, dtype="str"))


def fill_missing_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with NaN in the category columns replaced by MISSING_CATEGORY."""
    return frame.fillna({column: MISSING_CATEGORY for column in CATEGORY_COLUMNS})


def describe_table(frame: pd.DataFrame, target: np.ndarray) -> None:
    """Print each column's dtype, share of missing values and values, and the known rule."""
    print("   column    dtype    missing  values")
    for column, values in frame.items():
        counts = values.value_counts(normalize=True) if column in CATEGORY_COLUMNS else {}
        shown = ", ".join(f"{k} {v:.1%}" for k, v in counts.items())
        shown = shown or f"{values.min():.1f} to {values.max():.1f}"
        print(f"   {column:<9} {values.dtype!s:<8} {values.isna().mean():6.1%}   {shown}")
    rule = "-1 + 4·(debt/income - 0.4) - 0.03·(age - 45) + 0.8·rent - 0.6·own + 1.0·partner"
    print(f"   target: default, {target.mean():.0%} of rows; the rule: log-odds = {rule}")
    print("   (region plays no part; the noise is a coin flip with the rule's probability)")


# --- 2. Train: the pipeline, with a step of our own ----------------------------------------------
# The training side's libraries. A serving host without them still imports this file: there,
# predict_frame needs only numpy, pandas and onnxruntime, and DebtToIncome is left out.
try:
    import onnx
    import skl2onnx
    import sklearn
    from skl2onnx import to_onnx, update_registered_converter
    from skl2onnx.common.data_types import FloatTensorType
    from skl2onnx.common.exceptions import MissingShapeCalculator
    from skl2onnx.common.utils import check_input_and_output_numbers, check_input_and_output_types
    from sklearn.base import BaseEstimator, TransformerMixin
except ImportError:
    BaseEstimator = TransformerMixin = None

if BaseEstimator is not None:

    class DebtToIncome(TransformerMixin, BaseEstimator):
        """Divide the first column (debt) by the second (income): one feature, debt-to-income."""

        def fit(self, x: Any, y: Any = None) -> DebtToIncome:
            """Learn nothing: the step has no parameters."""
            return self

        def transform(self, x: Any) -> np.ndarray:
            """Return debt / income as a float32 column [rows, 1]."""
            x = np.asarray(x, dtype=np.float32)
            if x.ndim != 2 or x.shape[1] != 2:
                raise ValueError(f"DebtToIncome expects 2 columns, got shape {x.shape}")
            # float32 on both sides: IEEE division rounds correctly, so NumPy equals ONNX's Div.
            return x[:, [0]] / x[:, [1]]

        def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
            """Name the one output feature."""
            return np.array(["debt_to_income"], dtype=object)


def make_pipeline() -> Any:
    """Return the unfitted pipeline: ColumnTransformer, then LogisticRegression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    median = functools.partial(SimpleImputer, strategy="median")
    numbers = Pipeline([("impute", median()), ("scale", StandardScaler())])
    ratio = Pipeline([("impute", median()), ("ratio", DebtToIncome()), ("scale", StandardScaler())])
    # A string marker for missing strings (the converter takes no other): a gap becomes its own
    # category, "missing". An unseen category becomes a row of zeros, in ONNX too, not an error.
    fill = SimpleImputer(missing_values=MISSING_CATEGORY, strategy="constant", fill_value="missing")
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    categories = Pipeline([("impute", fill), ("onehot", onehot)])
    columns = [("numbers", numbers, NUMBER_COLUMNS), ("ratio", ratio, ["debt", "income"])]
    columns.append(("category", categories, CATEGORY_COLUMNS))
    # Logistic, as the rule is: it converts exactly and its probabilities are smooth (a tree's
    # float32 thresholds could flip a label); Newton-Cholesky takes a few exact Newton steps.
    classifier = LogisticRegression(solver="newton-cholesky")
    return Pipeline([("preprocess", ColumnTransformer(columns)), ("classify", classifier)])


def train(
    frame: pd.DataFrame, target: np.ndarray, probability: np.ndarray, seed: int
) -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    """Split, fit the pipeline, report accuracy and coefficients; return it and both splits."""
    from sklearn.model_selection import train_test_split

    train_frame, test_frame, train_target, test_target, _, test_probability = train_test_split(
        frame, target, probability, test_size=TEST_SIZE, random_state=seed
    )
    pipeline = make_pipeline().fit(fill_missing_categories(train_frame), train_target)
    for name, transformer, columns in pipeline.named_steps["preprocess"].transformers_:
        steps = " -> ".join(type(step).__name__ for _, step in transformer.steps)
        print(f"   {name:<8} {'[' + ', '.join(columns) + ']':<27} {steps}")
    print(f"   then {type(pipeline[-1]).__name__}; a missing number becomes its training median")
    accuracy = np.mean(pipeline.predict(fill_missing_categories(test_frame)) == test_target)
    ceiling = np.mean((test_probability > 0.5) == test_target)
    print(f"   held-out accuracy {accuracy:.3f}; the true rule's own guesses {ceiling:.3f} (noise)")
    names, coefficients = pipeline[:-1].get_feature_names_out(), pipeline[-1].coef_[0]
    order = np.argsort(-np.abs(coefficients))[:5]
    largest = ", ".join(f"{names[i].split('__')[1]} {coefficients[i]:+.2f}" for i in order)
    print(f"   largest coefficients: {largest}")
    return pipeline, train_frame, test_frame


# --- 3. Convert: teach skl2onnx our step ---------------------------------------------------------
def show_missing_converter(pipeline: Any, example: pd.DataFrame) -> str:
    """Try the conversion before registering DebtToIncome; return what skl2onnx says."""
    try:
        to_onnx(pipeline, example, target_opset=TARGET_OPSET)
    except MissingShapeCalculator as error:
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"
    return "it converted: DebtToIncome was already registered earlier in this process"


def debt_to_income_shape(operator: Any) -> None:
    """Shape calculator: a float [rows, 2] input gives a float [rows, 1] output."""
    # skl2onnx converts in two passes: shape calculators declare each output's type and shape,
    # then converters write the nodes. The type check keeps float64 tables out (pitfall 5).
    check_input_and_output_numbers(operator, input_count_range=1, output_count_range=1)
    check_input_and_output_types(operator, good_input_types=[FloatTensorType])
    operator.outputs[0].type = FloatTensorType([operator.inputs[0].get_first_dimension(), 1])


def debt_to_income_converter(scope: Any, operator: Any, container: Any) -> None:
    """Converter: write DebtToIncome as ONNX operators, Split into two columns, then Div."""
    debt = scope.get_unique_variable_name("debt_column")
    income = scope.get_unique_variable_name("income_column")
    # Split along axis 1 into two [rows, 1] halves; num_outputs is how opset 18 and later say it.
    split = scope.get_unique_operator_name("SplitDebtIncome")
    container.add_node(
        "Split", [operator.inputs[0].full_name], [debt, income], name=split, axis=1, num_outputs=2
    )
    divide = scope.get_unique_operator_name("DebtToIncome")
    container.add_node("Div", [debt, income], [operator.outputs[0].full_name], name=divide)


def register_debt_to_income() -> None:
    """Tell skl2onnx how to compute DebtToIncome's output type and how to write it in ONNX."""
    # The alias is the operator's name inside skl2onnx. Every process that converts registers it.
    update_registered_converter(
        DebtToIncome, "OnnxByExampleDebtToIncome", debt_to_income_shape, debt_to_income_converter
    )


def convert(pipeline: Any, example: pd.DataFrame) -> onnx.ModelProto:
    """Convert a fitted pipeline; the example's columns become the model's inputs."""
    # Given a DataFrame, skl2onnx declares one input per column, named after it, typed after its
    # dtype (float32 -> float, str -> string), shape [None, 1]: a first dimension with no name.
    # ZipMap off: probabilities come back as a float matrix, not a list of {class: p} dicts.
    options = {id(pipeline): {"zipmap": False}}
    model = to_onnx(pipeline, example, target_opset=TARGET_OPSET, options=options)
    model.ir_version = IR_VERSION
    # skl2onnx collects the opsets in a set, so their order follows Python's string hashing and
    # changes with PYTHONHASHSEED. One entry per domain, sorted: the same file on every run.
    versions: dict[str, int] = {}
    for opset in model.opset_import:
        versions[opset.domain] = max(versions.get(opset.domain, 0), opset.version)
    del model.opset_import[:]
    model.opset_import.extend(
        onnx.helper.make_opsetid(domain, versions[domain]) for domain in sorted(versions)
    )
    return model


# --- 4. Check ------------------------------------------------------------------------------------
def describe_model(model: onnx.ModelProto) -> None:
    """Print the checked model's inputs, outputs, opsets and operators."""

    def describe(value: Any) -> str:
        """Return 'name: type [dims]': each dimension's dim_value, dim_param, or ? for neither."""
        dims = value.type.tensor_type.shape.dim  # ? as Netron shows it; ONNX Runtime says None
        shown = [str(getattr(d, f)) if (f := d.WhichOneof("value")) else "?" for d in dims]
        kind = onnx.TensorProto.DataType.Name(value.type.tensor_type.elem_type).lower()
        return f"{value.name}: {kind} [{', '.join(shown)}]"

    print("   onnx.checker (full_check=True): valid")
    print("   inputs, one per column: " + ", ".join(map(describe, model.graph.input)))
    print("   outputs: " + ", ".join(map(describe, model.graph.output)))
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    print(f"   IR version {model.ir_version}; opsets: {opsets}")
    counts = pd.Series([node.op_type for node in model.graph.node]).value_counts().sort_index()
    shown = ", ".join(f"{op} x{count}" for op, count in counts.items())
    print(f"   {len(model.graph.node)} nodes: {shown}")


# --- 6. Load and 7. Run: the deployment side (pandas, numpy, onnxruntime) ------------------------
def load_session(path: Path) -> ort.InferenceSession:
    """Open a model file in ONNX Runtime on the CPU, once; reuse the session for every call."""
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def frame_to_feed(session: ort.InferenceSession, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Make the session's feed: one [rows, 1] array per input, of its declared type."""
    feed = {}
    for declared in session.get_inputs():  # the model's inputs, matched by name
        if declared.name not in frame.columns:
            raise KeyError(f"the model needs column {declared.name!r}, which the table lacks")
        column = frame[declared.name]
        if declared.type == "tensor(float)":
            # float64 or int64 columns would be refused ("Unexpected input data type"): cast them.
            values = column.to_numpy(dtype=np.float32, na_value=np.nan)
        elif declared.type == "tensor(string)":
            # NaN would silently become the text "nan", an unknown category: fill it first.
            values = column.fillna(MISSING_CATEGORY).to_numpy(dtype=object)
            if wrong := [value for value in values if not isinstance(value, str)]:
                raise TypeError(f"column {declared.name!r} must hold strings, found {wrong[0]!r}")
        else:
            raise TypeError(f"input {declared.name!r} has type {declared.type}, not handled here")
        feed[declared.name] = values.reshape(-1, 1)
    return feed


def predict_frame(session: ort.InferenceSession, frame: pd.DataFrame) -> tuple[Any, Any]:
    """Return labels [rows] and probabilities [rows, 2] for the rows of a DataFrame."""
    labels, probabilities = session.run(["label", "probabilities"], frame_to_feed(session, frame))
    return labels, probabilities


# --- 7. Verify -----------------------------------------------------------------------------------
def compare(name: str, actual: np.ndarray, expected: np.ndarray) -> float:
    """Return the largest difference of two probability arrays; raise AssertionError beyond ATOL."""
    # ATOL: float32 rounds each of the ~18 features (below ~3) by a few units of 6e-8, which moves
    # the log-odds by at most ~1e-5 and a probability (slope at most 1/4) by ~3e-6. Measured: 1e-7.
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: probabilities {actual.shape}, not {expected.shape}")
    difference = float(np.max(np.abs(actual - expected)))  # in float64
    if not difference <= ATOL:  # also catches NaN
        raise AssertionError(f"{name}: probabilities differ from predict_proba by {difference:.3g}")
    return difference


def verify(
    session: ort.InferenceSession, pipeline: Any, name: str, rows: pd.DataFrame, seen: pd.DataFrame
) -> np.ndarray:
    """Run the session on rows, check it against the pipeline, report; return the probabilities."""
    labels, probabilities = predict_frame(session, rows)
    filled = fill_missing_categories(rows)  # what scikit-learn sees: the same gaps, as ""
    difference = compare(name, probabilities, pipeline.predict_proba(filled))
    if differing := int(np.sum(labels != pipeline.predict(filled))):
        raise AssertionError(f"{name}: {differing} of {len(labels)} labels differ from predict")
    unseen = [~rows[c].isin(set(seen[c].dropna())) & rows[c].notna() for c in CATEGORY_COLUMNS]
    print(
        f"   {len(rows)} {name} ({rows[NUMBER_COLUMNS].isna().any(axis=1).sum()} with a missing "
        f"number, {rows[CATEGORY_COLUMNS].isna().any(axis=1).sum()} with a missing category, "
        f"{np.logical_or.reduce(unseen).sum()} with a category never seen in training): labels "
        f"equal predict, largest probability difference {difference:.2g} <= {ATOL:g}"
    )
    return probabilities


def compare_one_hot(pipeline: Any, rows: pd.DataFrame) -> list[str]:
    """Convert the preprocessing alone; check its one-hot blocks against scikit-learn's."""
    preprocess = pipeline.named_steps["preprocess"]
    filled = fill_missing_categories(rows)
    # The ColumnTransformer alone has one output, the matrix the classifier sees. Kept in memory.
    model = to_onnx(preprocess, filled[:1], target_opset=TARGET_OPSET)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (onnx_features,) = session.run(None, frame_to_feed(session, rows))
    sklearn_features = preprocess.transform(filled)
    encoder = preprocess.named_transformers_["category"].named_steps["onehot"]
    # The category branch comes last in the ColumnTransformer, so its blocks end the matrix.
    start, lines = len(preprocess.get_feature_names_out()) - sum(map(len, encoder.categories_)), []
    for column, categories in zip(CATEGORY_COLUMNS, encoder.categories_, strict=True):
        block, start = slice(start, start + len(categories)), start + len(categories)
        ours, theirs = onnx_features[:, block], sklearn_features[:, block]
        if not np.array_equal(ours, theirs):
            raise AssertionError(f"{column}: one-hot block differs: ONNX {ours} != {theirs}")
        blocks = "  ".join(f"{row.astype(int)!s:<11}" for row in ours).rstrip()
        lines.append(f"{column + ' (' + ', '.join(categories) + '):':<45}{blocks}")
    return lines


def show_new_rows(pipeline: Any, new: pd.DataFrame, probabilities: np.ndarray) -> None:
    """Print the new rows with ONNX Runtime's P(default), then their checked one-hot blocks."""
    shown = new.set_axis(range(1, len(new) + 1)).assign(**{"P(default)": probabilities[:, 1]})
    formats = {"P(default)": "{:.4f}".format}
    table = shown.to_string(na_rep="missing", float_format="{:g}".format, formatters=formats)
    print("   the new rows, and P(default) from ONNX Runtime:")
    print("\n".join("     " + line for line in table.splitlines()))
    print("   their one-hot blocks (rows 1, 2, 3), equal in ONNX Runtime and scikit-learn:")
    print("\n".join("     " + line for line in compare_one_hot(pipeline, new)))


# --- The lesson's flags --------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the lesson's own flag, --rows, bounded by the memory a run needs."""
    rows = functools.partial(whole_number, low=MIN_ROWS, high=MAX_ROWS)
    text = f"rows in the table, {MIN_ROWS} to {MAX_ROWS} (~0.6 KB of memory a row: 6 GB at most)"
    parser.add_argument("--rows", type=rows, default=DEFAULT_ROWS, help=text)


def usage_problem(args: argparse.Namespace) -> str | None:
    """Return why the flags cannot work together, or None: --rows alone is bounded by its range."""
    return None


# ==== Command-line plumbing, not about ONNX: the same block in every lesson (test_plumbing.py) ====


class Failure(Exception):
    """An operation that failed: main() prints `error: ` and the message, and returns 1."""


def whole_number(text: str, low: int, high: int) -> int:
    """Parse a whole number from low to high written with the digits 0-9, for argparse."""
    shown = text if len(text) <= 24 else text[:24] + "..."
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"expected a whole number (digits 0-9), got {shown!r}")
    if len(text) > 24 or not low <= int(text) <= high:
        raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {shown}")
    return int(text)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """Parse the lesson's flags and the shared ones; a usage error or a failed --help: one line."""
    summary, style = (__doc__ or "").partition("\n")[0], argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(Path(__file__).name, None, summary, formatter_class=style)
    add_arguments(parser)
    parser.add_argument("--output-dir", default="models", help="folder for the files it writes")
    seed = functools.partial(whole_number, low=0, high=2**32 - 1)
    parser.add_argument("--seed", type=seed, default=0, help="random seed, 0 to 2**32 - 1")
    parser.print_help = lambda file=None: print(parser.format_help(), end="", flush=True)  # type: ignore[method-assign]
    parser.error = lambda message: parser.exit(2, f"{parser.prog}: error: {message} (see --help)\n")  # type: ignore[method-assign]
    args = parser.parse_args(argv)
    name = args.output_dir  # onnx and ONNX Runtime take file names in UTF-8 only
    if not name or name != name.encode("utf-8", "replace").decode("utf-8"):
        parser.error("argument --output-dir: expected a folder name in UTF-8 (. is this folder)")
    args.output_dir = Path(name)
    if problem := usage_problem(args):
        parser.error(problem)
    return args


def prepare_output_dir(folder: Path) -> None:
    """Create the output folder when missing and check, by trying, that files can be made there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # permission bits miss root and read-only mounts
            pass
    except OSError as error:
        known = {errno.EEXIST: "a file or a broken link has that name"}
        known[errno.ENOENT] = "it refuses new files"  # /proc and other virtual file systems
        reason = known.get(error.errno or 0, error.strerror)
        raise Failure(f"cannot create files in the output folder {folder} ({reason})") from None


@contextlib.contextmanager
def publish(path: Path) -> Iterator[Path]:
    """Yield a hidden draft path that becomes path only if the block (save, load, verify) works."""
    draft = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        yield draft
        with open(draft, "r+b") as stream:  # on the disk before its new name points at it
            os.fsync(stream.fileno())
        os.replace(draft, path)
    finally:
        with contextlib.suppress(OSError):
            draft.unlink(missing_ok=True)


def stop(signum: int, frame: object) -> None:
    """Turn Ctrl-C, SIGTERM or SIGHUP into one KeyboardInterrupt, so that every cleanup runs."""
    STOPPED.append(signum)
    if len(STOPPED) == 1:
        raise KeyboardInterrupt


def report(error: BaseException) -> int:
    """Print the one line a failure deserves and return its exit status."""
    stopped = bool(STOPPED) or isinstance(error, KeyboardInterrupt)  # or a library relabelled it
    if isinstance(error, BrokenPipeError) and not stopped:  # the reader left (`| true`): quietly
        return 141
    signum = (STOPPED or [signal.SIGINT])[0]
    if stopped:
        reason = "interrupted" if signum == signal.SIGINT else "terminated"
    elif isinstance(error, OSError) and error.strerror:
        reason = error.strerror + (f": {error.filename}" if error.filename else "")
    else:
        kinds: dict[type, str] = {Failure: "", AssertionError: "verification failed: "}
        kind = kinds.get(type(error), f"{type(error).__name__}: ")
        reason = (kind + " ".join(str(error).split())[:400]).rstrip(": ") or "failed"
    print(f"error: {reason}", file=sys.stderr)
    return 128 + signum if stopped else 1


def main(argv: list[str] | None = None) -> int:
    """Run the lesson as a command and return its exit status; restore what it changes."""
    STOPPED.clear()
    if sys.stdout is None:  # started with stdout closed (`>&-`): nowhere to print the report
        return report(Failure("standard output is closed"))
    main_thread = threading.current_thread() is threading.main_thread()  # signals work there
    signals = [getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)]
    handlers = {s: signal.signal(s, stop) for s in signals} if main_thread else {}
    errors = getattr(sys.stdout, "errors", None)
    if hasattr(sys.stdout, "reconfigure"):  # any terminal: what it cannot show becomes an escape
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        args = parse_arguments(argv)
        prepare_output_dir(args.output_dir)
        lesson(args)
        sys.stdout.flush()  # a closed pipe or a full disk surfaces here at the latest
        if STOPPED:  # a signal that a library caught and dropped still stops the run
            raise KeyboardInterrupt
        return 0
    except SystemExit as exit:  # --help (0) or a usage error (2), printed by argparse
        return int(exit.code or 0)
    except BaseException as error:
        for s in handlers:  # a second Ctrl-C while the first is reported changes nothing
            signal.signal(s, signal.SIG_IGN)
        return report(error)
    finally:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):  # nowhere to print: leave Python's exit nothing to flush
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if errors and hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(errors=errors)
        for s, handler in handlers.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


if __name__ == "__main__":
    sys.exit(main())
