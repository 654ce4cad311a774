// A Node.js client of verdict.v1.DecisionService that has only proto/ (no generated code, no
// Python): it decides real credit applications from data/credit_data.csv, checks every answer
// is complete, checks error statuses, decides the same applications again in one DecideBatch call
// (each answer equal to its Decide answer, a bad request failed on its own with INVALID_ARGUMENT),
// and prints its answers as one JSON document on stdout.
//
// usage: node decide_credit.mjs TARGET PROTO_DIR CREDIT_CSV [COUNT]
//          [--tls-ca FILE [--tls-cert FILE --tls-key FILE] [--server-name NAME]] [--denied-flow FLOW]
// With --tls-ca it speaks TLS (mutual TLS with --tls-cert/--tls-key: the certificate names the
// caller). With --denied-flow it also checks that Decide on FLOW is refused with PERMISSION_DENIED
// naming FLOW, and that an unknown flow is refused the same way (authorization does not reveal
// which flows exist) instead of NOT_FOUND.
// exit code: 0 all checks passed, 1 a check failed (the failures are on stderr).

import fs from "node:fs";
import path from "node:path";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const positional = [];
const options = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i].startsWith("--")) options[argv[i].slice(2)] = argv[++i];
  else positional.push(argv[i]);
}
const [target, protoDir, csvPath, countArg] = positional;
const known = new Set(["tls-ca", "tls-cert", "tls-key", "server-name", "denied-flow"]);
const unknown = Object.keys(options).filter((k) => !known.has(k));
if (!target || !protoDir || !csvPath || unknown.length || Boolean(options["tls-cert"]) !== Boolean(options["tls-key"])) {
  console.error("usage: node decide_credit.mjs TARGET PROTO_DIR CREDIT_CSV [COUNT] [--tls-ca FILE [--tls-cert FILE --tls-key FILE] [--server-name NAME]] [--denied-flow FLOW]");
  process.exit(2);
}
const COUNT = Number(countArg ?? 25);
const DENIED_FLOW = options["denied-flow"];

function credentials() {
  if (!options["tls-ca"]) return grpc.credentials.createInsecure();
  const read = (name) => (options[name] ? fs.readFileSync(options[name]) : null);
  return grpc.credentials.createSsl(read("tls-ca"), read("tls-key"), read("tls-cert"));
}
const channelOptions = options["server-name"] ? { "grpc.ssl_target_name_override": options["server-name"] } : {};

const definition = protoLoader.loadSync("verdict/v1/decision.proto", {
  includeDirs: [protoDir],
  keepCase: true, // the proto's own field names: request_id, fired_rules, ...
  enums: String, // actions by name
  defaults: true, // every field present, as in proto3 JSON with defaults
  oneofs: true,
});
const verdict = grpc.loadPackageDefinition(definition).verdict.v1;
const client = new verdict.DecisionService(target, credentials(), channelOptions);

// --- google.protobuf.Struct from a plain object ------------------------------------------------
// protobufjs ships struct.proto with camelCase field names (numberValue, ...) even with keepCase.
function toValue(v) {
  if (v === null || v === undefined) return { nullValue: "NULL_VALUE" };
  if (typeof v === "number") return { numberValue: v };
  if (typeof v === "string") return { stringValue: v };
  if (typeof v === "boolean") return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  return { structValue: toStruct(v) };
}
function toStruct(obj) {
  return { fields: Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, toValue(v)])) };
}

// --- real applications: the CSV's columns in snake_case, missing cells omitted ------------------
function applications(file, count) {
  const [header, ...lines] = fs.readFileSync(file, "utf8").trim().split(/\r?\n/);
  const columns = header.split(",").map((c) => c.toLowerCase());
  const step = Math.max(1, Math.floor(lines.length / count));
  const rows = [];
  for (let i = 0; i < lines.length && rows.length < count; i += step) {
    const cells = lines[i].split(",");
    const row = {};
    columns.forEach((name, j) => {
      const cell = cells[j];
      if (name === "status" || cell === "") return;
      if (name === "records") row[name] = cell === "yes";
      else if (["home", "marital", "job"].includes(name)) row[name] = cell;
      else row[name] = Number(cell);
    });
    rows.push({ line: i + 2, input: row });
  }
  return rows;
}

function decide(request) {
  return new Promise((resolve, reject) => {
    client.Decide(request, { deadline: Date.now() + 10000 }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

function decideBatch(requests) {
  return new Promise((resolve, reject) => {
    client.DecideBatch({ requests }, { deadline: Date.now() + 30000 }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

const failures = [];
function check(condition, message) {
  if (!condition) failures.push(message);
}

const SEVERITY = { APPROVE: 1, REVIEW: 2, DECLINE: 3 };

function checkComplete(r, requestId) {
  const where = `request ${requestId}`;
  check(r.action in SEVERITY, `${where}: action ${r.action}`);
  check(r.decision_id.length > 0, `${where}: no decision_id`);
  check(r.request_id === requestId, `${where}: request_id echoed as ${r.request_id}`);
  check(r.flow === "credit_application" && r.version.length > 0, `${where}: flow/version ${r.flow}/${r.version}`);
  check(/^[0-9a-f]{16,}$/.test(r.revision), `${where}: revision ${r.revision}`);
  check(typeof r.scores.pd === "number" && r.scores.pd >= 0 && r.scores.pd <= 1, `${where}: scores.pd ${r.scores.pd}`);
  check(typeof r.models.credit_default === "string" && r.models.credit_default.includes("@"), `${where}: models`);
  check(r.eval_us > 0, `${where}: eval_us ${r.eval_us}`);
  if (r.action === "DECLINE") check(r.reasons.length >= 1 && r.reasons.length <= 4, `${where}: DECLINE with ${r.reasons.length} reasons`);
  if (r.action === "REVIEW") check(r.reasons.length >= 1, `${where}: REVIEW without reasons`);
  for (const reason of r.reasons) {
    check(reason.code && reason.message && ["rule", "model"].includes(reason.source), `${where}: incomplete reason ${JSON.stringify(reason)}`);
  }
  const worst = Math.max(0, ...r.fired_rules.map((f) => SEVERITY[f.action]));
  check(worst === 0 || SEVERITY[r.action] === worst, `${where}: action ${r.action} but the most severe fired rule is ${worst}`);
}

async function expectError(request, code, named) {
  try {
    await decide(request);
    failures.push(`${JSON.stringify(request.flow)}: expected status ${code}, got an answer`);
    return null;
  } catch (err) {
    check(err.code === grpc.status[code], `expected ${code}, got ${grpc.status[err.code]}: ${err.details}`);
    for (const name of named) check(err.details.includes(name), `${code} message does not name ${name}: ${err.details}`);
    const raw = err.metadata?.get("verdict-field-errors")?.[0];
    return raw ? JSON.parse(raw.toString()) : [];
  }
}

async function main() {
  const decided = [];
  for (const { line, input } of applications(csvPath, COUNT)) {
    const requestId = `node-${line}`;
    const response = await decide({ flow: "credit_application", request_id: requestId, input: toStruct(input) });
    checkComplete(response, requestId);
    decided.push({ line, request_id: requestId, input, response });
  }
  const actions = new Set(decided.map((d) => d.response.action));
  check(actions.size >= 2, `only ${[...actions]} among ${decided.length} real applications`);

  const bad = { ...decided[0].input, age: -5, home: "castle" };
  delete bad.seniority;
  const fields = await expectError({ flow: "credit_application", input: toStruct(bad) }, "INVALID_ARGUMENT", ["age", "home", "seniority"]);
  check(fields && ["age", "home", "seniority"].every((f) => fields.some((e) => e.field === f)), `verdict-field-errors: ${JSON.stringify(fields)}`);
  // Under authorization an unknown flow is just another flow the caller may not call.
  await expectError({ flow: "mortgage", input: toStruct({}) }, DENIED_FLOW ? "PERMISSION_DENIED" : "NOT_FOUND", ["mortgage"]);
  if (DENIED_FLOW) {
    await expectError({ flow: DENIED_FLOW, input: toStruct(decided[0].input) }, "PERMISSION_DENIED", [DENIED_FLOW]);
  }
  await expectError({ flow: "credit_application", version: "99", input: toStruct(decided[0].input) }, "NOT_FOUND", ["99"]);

  // The same applications in one DecideBatch, with a bad request in the middle: each answered on its own.
  const batchRequests = decided.map((d) => ({ flow: "credit_application", request_id: `${d.request_id}-b`, input: toStruct(d.input) }));
  batchRequests.splice(1, 0, { flow: "credit_application", request_id: "node-batch-bad", input: toStruct(bad) });
  const batch = await decideBatch(batchRequests);
  check(batch.results.length === batchRequests.length, `DecideBatch: ${batch.results.length} results for ${batchRequests.length} requests`);
  const badResult = batch.results[1];
  check(badResult?.result === "error" && badResult.error.code === grpc.status.INVALID_ARGUMENT, `DecideBatch bad request: ${JSON.stringify(badResult)}`);
  check(["age", "home", "seniority"].every((f) => badResult?.error?.field_errors?.some((e) => e.field === f)), "DecideBatch field errors");
  const batched = batch.results.filter((_, i) => i !== 1);
  batched.forEach((r, i) => {
    check(r.result === "response", `DecideBatch result ${i}: ${r.result}`);
    if (r.result !== "response") return;
    checkComplete(r.response, `${decided[i].request_id}-b`);
    const one = decided[i].response;
    const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
    check(r.response.action === one.action && same(r.response.reasons, one.reasons) && same(r.response.scores, one.scores),
      `DecideBatch answer ${i} differs from Decide's`);
  });
  if (DENIED_FLOW) {
    try {
      await decideBatch([batchRequests[0], { flow: DENIED_FLOW, input: toStruct(decided[0].input) }]);
      failures.push(`DecideBatch naming ${DENIED_FLOW}: expected PERMISSION_DENIED, got an answer`);
    } catch (err) {
      check(err.code === grpc.status.PERMISSION_DENIED && err.details.includes(DENIED_FLOW), `DecideBatch naming ${DENIED_FLOW}: ${err.details}`);
    }
  }

  const after = await decide({ flow: "credit_application", request_id: "node-after", input: toStruct(decided[0].input) });
  check(after.action === decided[0].response.action, "the server answers differently after the errors");

  process.stdout.write(JSON.stringify({ decided, batch: batched.map((r) => r.response), failures }) + "\n");
  client.close();
  if (failures.length) {
    for (const f of failures) console.error(`FAIL ${f}`);
    process.exit(1);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
