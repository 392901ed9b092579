// Runs ONNX models in onnxruntime-web (WebAssembly) under Node.js, for other_runtimes.py.
//
//   node js/run_models.mjs models/linear.json models/strings.json ...
//
// Each JSON file names a model (`model`, beside the JSON file), its external data files if any
// (`external_data`), and its inputs. Prints one JSON document on stdout:
//   {"versions": {...}, "results": {"linear.json": {"outputs": {...}} or {"error": "..."}}}
// Python compares the outputs with its own onnxruntime's: this program only runs the models.
//
// Tensors are written as {"type", "dims", "data"} so that every value survives JSON exactly:
// float32 values as a decimal that reads back as the same number; NaN, the infinities and -0 as
// the strings "NaN", "Infinity", "-Infinity", "-0" (JSON has no NaN, and JSON.stringify writes -0
// as 0); int64 values as decimal strings (a JavaScript number holds 53 bits, a BigInt 64).
import { readFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import process from "node:process";
import * as ort from "onnxruntime-web";

// One thread: the same answer on any machine, and no worker threads to start.
ort.env.wasm.numThreads = 1;
ort.env.logLevel = "error";

const ARRAYS = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  int64: BigInt64Array,
  uint8: Uint8Array,
  int8: Int8Array,
  bool: Uint8Array,
};

function readNumber(value) {
  if (typeof value === "number") return value;
  return { NaN: NaN, Infinity: Infinity, "-Infinity": -Infinity, "-0": -0 }[value];
}

function decode(tensor) {
  const { type, dims, data } = tensor;
  if (type === "string") return new ort.Tensor("string", data, dims);
  if (type === "int64") return new ort.Tensor(type, BigInt64Array.from(data, BigInt), dims);
  return new ort.Tensor(type, ARRAYS[type].from(data, readNumber), dims);
}

function writeNumber(value) {
  if (Object.is(value, -0)) return "-0"; // JSON.stringify(-0) would write 0
  if (Number.isFinite(value)) return value;
  return Number.isNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity";
}

function encode(tensor) {
  const values = Array.from(tensor.data);
  let data;
  if (tensor.type === "string") data = values;
  else if (tensor.type === "int64") data = values.map((value) => value.toString());
  else data = values.map((value) => writeNumber(Number(value)));
  return { type: tensor.type, dims: Array.from(tensor.dims), data };
}

async function runOne(file) {
  const spec = JSON.parse(await readFile(file, "utf8"));
  const folder = dirname(file);
  const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
  // A browser has no file system: the weights stored beside the model (external data) are handed
  // over by name, or creating the session fails with "Module.MountedFiles is not available".
  if (spec.external_data) {
    options.externalData = await Promise.all(
      spec.external_data.map(async (path) => ({ path, data: await readFile(join(folder, path)) })),
    );
  }
  const session = await ort.InferenceSession.create(join(folder, spec.model), options);
  try {
    const feeds = {};
    for (const [name, tensor] of Object.entries(spec.inputs)) feeds[name] = decode(tensor);
    const results = await session.run(feeds);
    const outputs = {};
    for (const name of session.outputNames) outputs[name] = encode(results[name]);
    return { outputs };
  } finally {
    await session.release();
  }
}

const results = {};
for (const file of process.argv.slice(2)) {
  try {
    results[basename(file)] = await runOne(file);
  } catch (error) {
    results[basename(file)] = { error: String(error && error.message ? error.message : error) };
  }
}
const versions = { "Node.js": process.versions.node, "onnxruntime-web": ort.env.versions.web };
process.stdout.write(JSON.stringify({ versions, results }) + "\n");
