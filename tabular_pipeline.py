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

Real tabular models take a table: numbers with missing values, categories stored as strings,
categories that training never saw, and a preprocessing step nobody wrote a converter for. This
lesson builds such a table in code (pandas, seeded, no download), trains a scikit-learn pipeline
on it, and serves it with ONNX Runtime alone:

1. Build:   loan applications from a known rule plus noise; float32 numbers and string categories,
            both with NaN gaps, and one category with rare values.
2. Train:   a ColumnTransformer (numbers imputed and scaled; our own ``DebtToIncome`` step; strings
            filled and one-hot encoded, ``handle_unknown='ignore'``), then LogisticRegression.
3. Convert: ``to_onnx(pipeline, frame[:1])`` gives one ONNX input per column, named after it, float
            or string. skl2onnx first refuses ``DebtToIncome`` (MissingShapeCalculator), so we
            register a shape calculator and a converter written with ONNX operators (Split, Div).
4. Check, 5. Save ``<output-dir>/tabular_pipeline.onnx`` atomically, 6. Load it into a session.
7. Run and verify: ``predict_frame`` (pandas, numpy and onnxruntime only) feeds one [N, 1] array
   per column. On held-out rows and new rows with gaps and unseen categories, labels must equal
   ``predict`` and probabilities match ``predict_proba`` within ATOL; a mismatch exits with 1.

The converter is the twin of neural_network.py's custom operator. There, ONNX learns a new operator
(a function in a domain of our own, shipped in the file); here, skl2onnx learns a new scikit-learn
class and writes it with standard operators: the file holds nothing new, any runtime runs it.

LogisticRegression suits the lesson: the rule is logistic, it converts exactly, trains in a few
Newton steps, and its probabilities are smooth. A tree compares features with thresholds, and a
float32 ratio can fall on the other side of one, flipping a label.

    python tabular_pipeline.py                      # 2000 rows, seed 0, writes models/
    python tabular_pipeline.py --rows 500 --seed 7 --output-dir /tmp/models
"""

from __future__ import annotations

import argparse
import collections
import errno
import os
import platform
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if __name__ == "__main__":
    # Ctrl-C while the libraries below are still importing: one line and status 130, as in main().
    def _interrupted_at_startup(signum: int, frame: object) -> None:
        sys.stderr.write("error: interrupted\n")
        os._exit(130)

    signal.signal(signal.SIGINT, _interrupted_at_startup)

# The deployment side (frame_to_feed, predict_frame) needs only these three. The training side
# imports scikit-learn, skl2onnx and onnx inside the functions that use them.
import numpy as np
import onnxruntime as ort
import pandas as pd

try:  # Only the training side uses the transformer class below; a serving host may lack sklearn.
    from sklearn.base import BaseEstimator, TransformerMixin
except ImportError:
    BaseEstimator = TransformerMixin = None

if TYPE_CHECKING:
    import onnx

# Target opsets, as in sklearn_converter.py: 22 for the default domain, 3 for ai.onnx.ml. skl2onnx
# imports only the versions the graph needs, at most these. The pinned onnxruntime loads both.
TARGET_OPSET = {"": 22, "ai.onnx.ml": 3}
IR_VERSION = 10
MODEL_FILE = "tabular_pipeline.onnx"
DEFAULT_ROWS = 2000
MIN_ROWS = 100
TEST_SIZE = 0.25
SEED_MAX = 2**32 - 1  # NumPy and scikit-learn accept seeds from 0 to 2**32 - 1: one range for all

NUMBER_COLUMNS = ["age", "income", "debt"]  # years, thousands a year, thousands
CATEGORY_COLUMNS = ["region", "housing", "channel"]
# A missing category crosses into the model as this string. pandas 3 marks it with NaN, a float, and
# an ONNX string tensor cannot hold one: skl2onnx's SimpleImputer converter refuses NaN for strings
# and ONNX Runtime would turn it into the text "nan". So both sides fill NaN with "" first.
MISSING_CATEGORY = ""
# Categories that tomorrow's applications bring and training never saw.
UNSEEN = {"region": "overseas", "housing": "houseboat", "channel": "kiosk"}

# Tolerance for probabilities. ONNX Runtime computes in float32 (unit roundoff 2**-24, 6e-8),
# scikit-learn in float64 from the same float32 table. Scaling and the ratio round each feature by
# a few units of 6e-8; the log-odds sum 18 terms of size below ~3, so it moves by at most ~1e-5,
# and a probability, whose slope in the log-odds is at most 1/4, by at most ~3e-6. Measured: ~1e-7.
ATOL = 1e-5


# --- 1. Build: the table -------------------------------------------------------------------------


def make_table(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Return loan applications, the default label, and the true rule's probability of default."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(18.0, 75.0, rows)
    income = rng.lognormal(np.log(45.0), 0.5, rows)
    ratio = rng.gamma(2.0, 0.2, rows)  # debt-to-income, mean 0.4
    region = rng.choice(["north", "south", "east", "west"], rows)
    housing = rng.choice(["rent", "own", "mortgage"], rows, p=[0.4, 0.25, 0.35])
    channel = rng.choice(
        ["web", "branch", "phone", "partner", "fax"], rows, p=[0.6, 0.27, 0.1, 0.02, 0.01]
    )
    # The known rule (log-odds of default). Region plays no part: the model should learn to ignore
    # it. The ratio matters most, and a linear model cannot form a ratio from debt and income.
    log_odds = (
        -1.0
        + 4.0 * (ratio - 0.4)
        - 0.03 * (age - 45.0)
        + 0.8 * (housing == "rent")
        - 0.6 * (housing == "own")
        + 1.0 * (channel == "partner")
    )
    probability = 1.0 / (1.0 + np.exp(-log_odds))
    target = (rng.random(rows) < probability).astype(np.int64)
    frame = pd.DataFrame(
        {
            # float32 columns: ONNX Runtime computes in float32, so both sides see the same numbers.
            "age": age.astype(np.float32),
            "income": income.astype(np.float32),
            "debt": (income * ratio).astype(np.float32),
            "region": region,
            "housing": housing,
            "channel": channel,
        }
    )
    # Gaps, after the rule has used the true values: what a real form leaves blank.
    for column, share in (("age", 0.05), ("income", 0.08), ("region", 0.06), ("housing", 0.1)):
        frame.loc[rng.random(rows) < share, column] = np.nan
    return frame, target, probability


def edge_rows() -> pd.DataFrame:
    """Return three new applications: every value missing, a new channel, nothing seen before."""
    nan = np.float32(np.nan)
    return pd.DataFrame(
        {
            "age": np.array([nan, 35.0, nan], dtype=np.float32),
            "income": np.array([nan, 40.0, nan], dtype=np.float32),
            "debt": np.array([nan, 20.0, 30.0], dtype=np.float32),
            "region": pd.Series([np.nan, "north", UNSEEN["region"]], dtype="str"),
            "housing": pd.Series([np.nan, "rent", UNSEEN["housing"]], dtype="str"),
            "channel": pd.Series([np.nan, UNSEEN["channel"], UNSEEN["channel"]], dtype="str"),
        }
    )


def fill_missing_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with NaN in the category columns replaced by MISSING_CATEGORY."""
    return frame.fillna({column: MISSING_CATEGORY for column in CATEGORY_COLUMNS})


def describe_table(frame: pd.DataFrame, target: np.ndarray) -> None:
    """Print each column's dtype, share of missing values and values, and the known rule."""
    print("   column    dtype    missing  values")
    for column in frame.columns:
        values = frame[column]
        if column in NUMBER_COLUMNS:
            shown = f"{values.min():.1f} to {values.max():.1f}"
        else:
            counts = values.value_counts(normalize=True)
            shown = ", ".join(f"{name} {share:.1%}" for name, share in counts.items())
        print(f"   {column:<9} {values.dtype!s:<8} {values.isna().mean():6.1%}   {shown}")
    print(
        f"   target: default, {target.mean():.0%} of rows; the rule: log-odds = -1"
        " + 4·(debt/income - 0.4) - 0.03·(age - 45) + 0.8·rent - 0.6·own + 1.0·partner"
    )
    print("   (region plays no part; the noise is a coin flip with the rule's probability)")


# --- 2. Train: the pipeline, with a step of our own ----------------------------------------------

if BaseEstimator is not None:

    class DebtToIncome(TransformerMixin, BaseEstimator):
        """Divide the first column (debt) by the second (income): one feature, debt-to-income."""

        def fit(self, x: Any, y: Any = None) -> DebtToIncome:
            """Learn nothing: the step has no parameters."""
            return self

        def transform(self, x: Any) -> np.ndarray:
            """Return debt / income as a float32 column [N, 1]."""
            x = np.asarray(x, dtype=np.float32)
            if x.ndim != 2 or x.shape[1] != 2:
                raise ValueError(f"DebtToIncome expects 2 columns, got shape {x.shape}")
            # float32 on both sides: IEEE division is correctly rounded, so NumPy's quotient and
            # ONNX's Div are the same float32 number, bit for bit.
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

    numbers = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    ratio = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("ratio", DebtToIncome()),
            ("scale", StandardScaler()),
        ]
    )
    categories = Pipeline(
        [
            # The missing marker is a string, MISSING_CATEGORY: the imputer's converter handles
            # only string markers for string columns, and a missing value becomes its own category.
            (
                "impute",
                SimpleImputer(
                    missing_values=MISSING_CATEGORY, strategy="constant", fill_value="missing"
                ),
            ),
            # An unseen category becomes a row of zeros (in ONNX too) instead of an error.
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    preprocess = ColumnTransformer(
        [
            ("numbers", numbers, NUMBER_COLUMNS),
            ("ratio", ratio, ["debt", "income"]),
            ("category", categories, CATEGORY_COLUMNS),
        ]
    )
    # Newton-Cholesky: a few exact Newton steps, the solver scikit-learn recommends for many more
    # rows than features (one-hot columns included); deterministic, and quicker than lbfgs here.
    classifier = LogisticRegression(solver="newton-cholesky")
    return Pipeline([("preprocess", preprocess), ("classify", classifier)])


def train(
    frame: pd.DataFrame, target: np.ndarray, probability: np.ndarray, seed: int
) -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    """Split, fit the pipeline, report accuracy and coefficients; return it and both splits."""
    from sklearn.model_selection import train_test_split

    train_frame, test_frame, train_target, test_target, _, test_probability = train_test_split(
        frame, target, probability, test_size=TEST_SIZE, random_state=seed
    )
    pipeline = make_pipeline().fit(fill_missing_categories(train_frame), train_target)
    accuracy = np.mean(pipeline.predict(fill_missing_categories(test_frame)) == test_target)
    ceiling = np.mean((test_probability > 0.5) == test_target)
    for name, transformer, columns in pipeline.named_steps["preprocess"].transformers_:
        if name != "remainder":
            steps = " -> ".join(type(step).__name__ for _, step in transformer.steps)
            print(f"   {name:<8} {'[' + ', '.join(columns) + ']':<27} {steps}")
    print(f"   then {type(pipeline[-1]).__name__}")
    print(
        f"   gaps: a number becomes its training median; a category ({MISSING_CATEGORY!r}) becomes "
        "'missing'"
    )
    print(
        f"   held-out accuracy {accuracy:.3f}; the true rule's own guesses score {ceiling:.3f} "
        "(noise caps both)"
    )
    names = pipeline[:-1].get_feature_names_out()
    coefficients = pipeline[-1].coef_[0]
    order = np.argsort(-np.abs(coefficients))[:5]
    print(
        "   largest coefficients: "
        + ", ".join(f"{names[i].split('__')[1]} {coefficients[i]:+.2f}" for i in order)
    )
    return pipeline, train_frame, test_frame


# --- 3. Convert: teach skl2onnx our step ---------------------------------------------------------


def debt_to_income_shape(operator: Any) -> None:
    """Shape calculator: a float [N, 2] input gives a float [N, 1] output."""
    from skl2onnx.common.data_types import FloatTensorType
    from skl2onnx.common.utils import check_input_and_output_numbers, check_input_and_output_types

    check_input_and_output_numbers(operator, input_count_range=1, output_count_range=1)
    check_input_and_output_types(operator, good_input_types=[FloatTensorType])
    operator.outputs[0].type = FloatTensorType([operator.inputs[0].get_first_dimension(), 1])


def debt_to_income_converter(scope: Any, operator: Any, container: Any) -> None:
    """Converter: write DebtToIncome as ONNX operators, Split into two columns, then Div."""
    debt = scope.get_unique_variable_name("debt_column")
    income = scope.get_unique_variable_name("income_column")
    # Split along axis 1 into two [N, 1] halves; num_outputs is how opset 18 and later say "halves".
    container.add_node(
        "Split",
        [operator.inputs[0].full_name],
        [debt, income],
        name=scope.get_unique_operator_name("SplitDebtIncome"),
        axis=1,
        num_outputs=2,
    )
    container.add_node(
        "Div",
        [debt, income],
        [operator.outputs[0].full_name],
        name=scope.get_unique_operator_name("DebtToIncome"),
    )


def show_missing_converter(pipeline: Any, example: pd.DataFrame) -> str:
    """Try the conversion before registering DebtToIncome; return what skl2onnx says."""
    from skl2onnx import to_onnx
    from skl2onnx.common.exceptions import MissingShapeCalculator

    try:
        to_onnx(pipeline, example, target_opset=TARGET_OPSET)
    except MissingShapeCalculator as error:
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"
    return "it converted: DebtToIncome was already registered earlier in this process"


def register_debt_to_income() -> None:
    """Tell skl2onnx how to compute DebtToIncome's output type and how to write it in ONNX."""
    from skl2onnx import update_registered_converter

    # The alias names the operator inside skl2onnx's topology; any unique string will do.
    update_registered_converter(
        DebtToIncome, "OnnxByExampleDebtToIncome", debt_to_income_shape, debt_to_income_converter
    )


def convert(pipeline: Any, example: pd.DataFrame) -> onnx.ModelProto:
    """Convert a fitted pipeline; the example's columns become the model's inputs."""
    from onnx.helper import make_opsetid
    from skl2onnx import to_onnx

    # Given a DataFrame, skl2onnx declares one input per column, named after it, with a type from
    # its dtype (float32 -> float, str -> string) and shape [None, 1]: any number of rows.
    model = to_onnx(
        pipeline,
        example,
        target_opset=TARGET_OPSET,
        # ZipMap off: probabilities come back as a float matrix, not a list of {class: p} dicts.
        options={id(pipeline): {"zipmap": False}},
    )
    model.ir_version = IR_VERSION
    # skl2onnx collects the opsets in a set, so their order follows Python's string hashing and
    # changes with PYTHONHASHSEED. One entry per domain, sorted: the same file on every run.
    versions: dict[str, int] = {}
    for opset in model.opset_import:
        versions[opset.domain] = max(versions.get(opset.domain, 0), opset.version)
    del model.opset_import[:]
    model.opset_import.extend(make_opsetid(domain, versions[domain]) for domain in sorted(versions))
    return model


# --- 4. Check ------------------------------------------------------------------------------------


def describe_value(value: Any) -> str:
    """Return 'name: type [dims]' for a graph input or output."""
    import onnx

    tensor = value.type.tensor_type
    dims = [
        d.dim_param or (d.dim_value if d.HasField("dim_value") else "N") for d in tensor.shape.dim
    ]
    kind = onnx.TensorProto.DataType.Name(tensor.elem_type).lower()
    return f"{value.name}: {kind} [{', '.join(map(str, dims))}]"


def check(model: onnx.ModelProto) -> None:
    """Validate the model and print its inputs, outputs, opsets and operators."""
    import onnx

    onnx.checker.check_model(model, full_check=True)
    print("   onnx.checker (full_check=True): valid")
    print("   inputs, one per column: " + ", ".join(describe_value(v) for v in model.graph.input))
    print("   outputs: " + ", ".join(describe_value(v) for v in model.graph.output))
    print(
        f"   IR version {model.ir_version}; opsets: "
        + ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    )
    counts = collections.Counter(node.op_type for node in model.graph.node)
    print(
        f"   {len(model.graph.node)} nodes: "
        + ", ".join(f"{op} x{count}" for op, count in sorted(counts.items()))
    )


# --- 5. Save -------------------------------------------------------------------------------------


def save_model(model: onnx.ModelProto, path: Path) -> int:
    """Write the model atomically to path and return its size in bytes."""
    data = model.SerializeToString()
    # A temporary file in the same folder, then os.replace: never a half-written model at path.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        # Open the handle first: if anything below fails, the with block closes it, and the
        # cleanup can remove the file (Windows cannot remove a file that is still open).
        with os.fdopen(handle, "wb") as stream:
            os.chmod(temporary, 0o666 & ~umask)  # mkstemp's file is private; use the usual mode
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return len(data)


# --- 6. Load and 7. Run: the deployment side (pandas, numpy, onnxruntime) ------------------------


def load_session(path: Path) -> ort.InferenceSession:
    """Open the saved model once, on the CPU; reuse the session for every call."""
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def frame_to_feed(session: ort.InferenceSession, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Make the session's feed: one [N, 1] array per input, of its declared type."""
    feed = {}
    for declared in session.get_inputs():
        if declared.name not in frame.columns:
            raise KeyError(
                f"the model needs column {declared.name!r}; the table has no such column"
            )
        column = frame[declared.name]
        if declared.type == "tensor(float)":
            # float64 or int64 columns would be refused ("Unexpected input data type"): cast them.
            values = column.to_numpy(dtype=np.float32, na_value=np.nan)
        elif declared.type == "tensor(string)":
            # NaN would silently become the text "nan", an unknown category: fill it first.
            values = column.fillna(MISSING_CATEGORY).to_numpy(dtype=object)
            wrong = [value for value in values if not isinstance(value, str)]
            if wrong:
                raise TypeError(f"column {declared.name!r} must hold strings, found {wrong[0]!r}")
        else:
            raise TypeError(f"input {declared.name!r} has type {declared.type}, not handled here")
        feed[declared.name] = values.reshape(-1, 1)
    return feed


def predict_frame(
    session: ort.InferenceSession, frame: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Return labels [N] and probabilities [N, 2] for the rows of a DataFrame."""
    labels, probabilities = session.run(["label", "probabilities"], frame_to_feed(session, frame))
    return labels, probabilities


# --- 7. Verify -----------------------------------------------------------------------------------


def verify(
    name: str, pipeline: Any, frame: pd.DataFrame, labels: np.ndarray, probabilities: np.ndarray
) -> float:
    """Check labels exactly and probabilities within ATOL; return the largest difference."""
    filled = fill_missing_categories(frame)
    expected = pipeline.predict_proba(filled)
    if probabilities.shape != expected.shape:
        raise AssertionError(
            f"{name}: probabilities shape {probabilities.shape} != {expected.shape}"
        )
    difference = float(np.max(np.abs(probabilities.astype(np.float64) - expected)))
    if not difference <= ATOL:  # also catches NaN
        raise AssertionError(
            f"{name}: probabilities differ from predict_proba by up to {difference:.3g} "
            f"(tolerance atol={ATOL:g})"
        )
    differing = int(np.sum(labels != pipeline.predict(filled)))
    if differing:
        raise AssertionError(f"{name}: {differing} of {len(labels)} labels differ from predict")
    return difference


def describe_gaps(frame: pd.DataFrame, train_frame: pd.DataFrame) -> str:
    """Count rows with a missing number, a missing category, and a category unseen in training."""
    seen = {column: set(train_frame[column].dropna()) for column in CATEGORY_COLUMNS}
    unseen = np.zeros(len(frame), dtype=bool)
    for column in CATEGORY_COLUMNS:
        values = frame[column]
        unseen |= (values.notna() & ~values.isin(seen[column])).to_numpy()
    return (
        f"{int(frame[NUMBER_COLUMNS].isna().any(axis=1).sum())} with a missing number, "
        f"{int(frame[CATEGORY_COLUMNS].isna().any(axis=1).sum())} with a missing category, "
        f"{int(unseen.sum())} with a category never seen in training"
    )


def compare_one_hot(pipeline: Any, rows: pd.DataFrame) -> list[str]:
    """Convert the preprocessing alone; check its one-hot blocks against scikit-learn's."""
    from skl2onnx import to_onnx

    preprocess = pipeline.named_steps["preprocess"]
    filled = fill_missing_categories(rows)
    # The ColumnTransformer on its own has one output: the feature matrix the classifier sees.
    session = ort.InferenceSession(
        to_onnx(preprocess, filled[:1], target_opset=TARGET_OPSET).SerializeToString(),
        providers=["CPUExecutionProvider"],
    )
    (onnx_features,) = session.run(None, frame_to_feed(session, rows))
    sklearn_features = preprocess.transform(filled)
    encoder = preprocess.named_transformers_["category"].named_steps["onehot"]
    lines = []
    # The category branch comes last in the ColumnTransformer, so its blocks end the matrix.
    start = len(preprocess.get_feature_names_out()) - sum(map(len, encoder.categories_))
    for column, categories in zip(CATEGORY_COLUMNS, encoder.categories_, strict=True):
        block = slice(start, start + len(categories))
        start += len(categories)
        ours, theirs = onnx_features[:, block], sklearn_features[:, block]
        if not np.array_equal(ours, theirs):
            raise AssertionError(f"{column}: one-hot block differs: ONNX {ours} != {theirs}")
        header = f"{column} ({', '.join(categories)}):"
        lines.append(
            f"{header:<45}" + "  ".join(f"{row.astype(int)!s:<11}" for row in ours).rstrip()
        )
    return lines


def describe_row(row: pd.Series) -> str:
    """Return one table row as 'column value, ...', or 'every value missing'."""
    if row.isna().all():
        return "every value missing"
    return ", ".join(
        f"{name} missing"
        if pd.isna(value)
        else f"{name} {value:g}"
        if isinstance(value, float | np.floating)
        else f"{name} {value}"
        for name, value in row.items()
    )


def run_and_verify(
    session: ort.InferenceSession,
    pipeline: Any,
    name: str,
    rows: pd.DataFrame,
    train_frame: pd.DataFrame,
) -> np.ndarray:
    """Run the session on rows, verify against the pipeline, report; return the probabilities."""
    labels, probabilities = predict_frame(session, rows)
    difference = verify(name, pipeline, rows, labels, probabilities)
    print(
        f"   {len(rows)} {name} ({describe_gaps(rows, train_frame)}): labels equal "
        f"predict, largest probability difference {difference:.2g}"
    )
    return probabilities


def show_new_rows(pipeline: Any, new: pd.DataFrame, probabilities: np.ndarray) -> None:
    """Print the new rows with ONNX Runtime's P(default), then their checked one-hot blocks."""
    print("   the new rows, and P(default) from ONNX Runtime:")
    for row in range(len(new)):
        print(f"     {row + 1}. {probabilities[row, 1]:.4f}  {describe_row(new.iloc[row])}")
    print("   their one-hot blocks (rows 1, 2, 3), equal in ONNX Runtime and scikit-learn:")
    for line in compare_one_hot(pipeline, new):
        print("     " + line)


# --- Command line --------------------------------------------------------------------------------


def seed_int(text: str) -> int:
    """Parse a seed from 0 to SEED_MAX, for argparse."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be from 0 to 2**32 - 1 ({SEED_MAX}), got {value}")
    return value


def rows_int(text: str) -> int:
    """Parse a row count of at least MIN_ROWS, for argparse."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < MIN_ROWS:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_ROWS}, got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line; exit 2 with one message on a usage error."""
    parser = argparse.ArgumentParser(
        prog=Path(__file__).name,
        description="Train a scikit-learn pipeline on a table with strings and missing values, "
        "convert it with a custom converter, and verify ONNX Runtime against scikit-learn.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--rows", type=rows_int, default=DEFAULT_ROWS, help=f"rows in the table, {MIN_ROWS} or more"
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path("models"),
        help="folder for the .onnx file, created when missing",
    )
    parser.add_argument("--seed", type=seed_int, default=0, help="random seed, 0 to 2**32 - 1")

    # One line that names the problem instead of the whole usage; the exit status stays 2.
    def usage_error(message: str) -> NoReturn:
        parser.exit(2, f"{parser.prog}: error: {message} (see --help)\n")

    parser.error = usage_error  # type: ignore[method-assign]
    return parser.parse_args(argv)


def prepare_output_dir(folder: Path) -> None:
    """Create the output folder when missing and make sure a file can be written there."""
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "the output folder is not a folder", str(folder))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Permission bits do not tell the whole story (root, read-only mounts, /proc): try it.
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise OSError(
            error.errno, f"the output folder is not writable ({error.strerror})", str(folder)
        ) from None


def print_versions() -> None:
    """Print the versions this run used, so a pasted report can be reproduced."""
    import onnx
    import skl2onnx
    import sklearn

    print(
        f"Versions: Python {platform.python_version()}, numpy {np.__version__}, "
        f"pandas {pd.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}, "
        f"scikit-learn {sklearn.__version__}, skl2onnx {skl2onnx.__version__}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the lesson: build, train, convert, check, save, load, run and verify."""
    args = parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        # Any terminal encoding: a character it cannot show becomes an escape, not an error.
        sys.stdout.reconfigure(errors="backslashreplace")
    # From here on Ctrl-C raises KeyboardInterrupt, which the handler below turns into status 130.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    path = args.output_dir / MODEL_FILE
    try:
        prepare_output_dir(args.output_dir)
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
        check(model)

        print("\n5. Save it atomically")
        size = save_model(model, path)
        print(f"   wrote {path} ({size} bytes)")

        print("\n6. Load it from disk into ONNX Runtime, once (the deployment side)")
        session = load_session(path)
        print("   predict_frame: DataFrame -> one [N, 1] array per input -> session.run")

        print(f"\n7. Run and verify against scikit-learn (probabilities within atol={ATOL:g})")
        run_and_verify(session, pipeline, "held-out rows", test_frame, train_frame)
        new = edge_rows()
        probabilities = run_and_verify(session, pipeline, "new rows", new, train_frame)
        show_new_rows(pipeline, new, probabilities)

        print(f"\nVerified: {path} agrees with scikit-learn on every row.")
        print_versions()
        sys.stdout.flush()  # a closed pipe surfaces here at the latest, inside the handlers
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader closed the pipe (`| head`): stop quietly like other command-line tools, and
        # point stdout at devnull so Python's own flush at exit has nothing to complain about.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except AssertionError as error:
        print(f"error: verification failed: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        where = f": {error.filename}" if error.filename else ""
        print(f"error: {error.strerror or error}{where}", file=sys.stderr)
        return 1
    except Exception as error:  # one line instead of a traceback, as the contract promises
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(f"error: {type(error).__name__}{': ' if message else ''}{message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
