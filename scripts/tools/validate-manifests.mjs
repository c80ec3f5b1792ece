#!/usr/bin/env node
// Validates rendered Kubernetes manifests offline; scripts/check-manifests.sh
// runs it on `kubectl kustomize` output:
//
//   node scripts/tools/validate-manifests.mjs NAME=RENDERED.yaml [NAME=FILE ...]
//
// For every object of every YAML stream:
//   1. schema: the kubernetes-models class for its apiVersion/kind (an unknown
//      apiVersion or kind is an error) and .validate() against the Kubernetes
//      OpenAPI JSON schema (types, required fields, formats, enums);
//   2. unknown fields: the JSON schemas accept any extra property, so a typo
//      such as `readinesProbe` would pass; every object is also type-checked as
//      an object literal of the model's TypeScript interface, whose excess
//      property check rejects every field the API does not have;
//   3. project rules: selectors, probe ports, ConfigMap/Secret references,
//      the security context and resources (Deployments and StatefulSets); the
//      termination grace period against the configured drain and 2+ replicas
//      (Deployments: the gateway); no real-looking token in a Secret.
// Custom resources (cert-manager's Certificate) have no kubernetes-models
// class: a hand-written check of the fields, types and enums instead of 1
// and 2 (CRD_CHECKS below); any other custom resource is an error.
// Prints kind/name per stream and every problem; exits 1 on any problem.
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import ts from "typescript";

const here = path.dirname(fileURLToPath(import.meta.url));
const problems = [];
const notes = [];
const objects = []; // { stream, doc, id, mod, kind }

function problem(stream, id, message) {
  problems.push(`${stream}: ${id}: ${message}`);
}

function moduleFor(apiVersion) {
  const [group, version] = apiVersion.includes("/")
    ? apiVersion.split("/")
    : ["", apiVersion];
  return group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`;
}

// ---------------------------------------------------------------- loading
const args = process.argv.slice(2);
if (args.length === 0) {
  console.error("usage: validate-manifests.mjs NAME=FILE.yaml ...");
  process.exit(2);
}
for (const arg of args) {
  const eq = arg.indexOf("=");
  const [stream, file] = eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, arg];
  const docs = parseAllDocuments(readFileSync(file, "utf8"), { version: "1.1" });
  let index = 0;
  for (const d of docs) {
    index++;
    if (d.errors.length) {
      problem(stream, `document ${index}`, `YAML: ${d.errors.map((e) => e.message).join("; ")}`);
      continue;
    }
    const doc = d.toJS();
    if (doc == null) continue;
    const kind = doc.kind ?? "?";
    const id = `${kind}/${doc.metadata?.name ?? "?"}`;
    if (typeof doc.apiVersion !== "string" || typeof doc.kind !== "string") {
      problem(stream, id, "no apiVersion or kind");
      continue;
    }
    objects.push({ stream, doc, id, mod: moduleFor(doc.apiVersion), kind });
  }
}

// ------------------------------------------------------ custom resources
const GO_DURATION = /^([0-9]+(\.[0-9]+)?(h|m|s|ms|us|µs|ns))+$/;
const onlyKeys = (obj, keys, where, out) => {
  for (const k of Object.keys(obj ?? {})) if (!keys.includes(k)) out.push(`${where}: unknown field ${k}`);
};
const strings = (v, where, out) => {
  if (v !== undefined && !(Array.isArray(v) && v.every((x) => typeof x === "string")))
    out.push(`${where} must be a list of strings`);
};
// cert-manager.io/v1 Certificate (https://cert-manager.io/docs/reference/api-docs/).
function checkCertificate(doc) {
  const out = [];
  onlyKeys(doc, ["apiVersion", "kind", "metadata", "spec"], "/", out);
  const spec = doc.spec ?? {};
  onlyKeys(spec, ["secretName", "secretTemplate", "duration", "renewBefore", "renewBeforePercentage",
    "privateKey", "usages", "commonName", "dnsNames", "uris", "ipAddresses", "emailAddresses",
    "otherNames", "subject", "literalSubject", "isCA", "issuerRef", "keystores",
    "revisionHistoryLimit", "additionalOutputFormats", "encodeUsagesInRequest", "nameConstraints"],
    "/spec", out);
  if (typeof spec.secretName !== "string" || !spec.secretName) out.push("/spec/secretName is required");
  const ref = spec.issuerRef ?? {};
  onlyKeys(ref, ["name", "kind", "group"], "/spec/issuerRef", out);
  if (typeof ref.name !== "string" || !ref.name) out.push("/spec/issuerRef/name is required");
  if ((ref.group ?? "cert-manager.io") === "cert-manager.io" && !["Issuer", "ClusterIssuer", undefined].includes(ref.kind))
    out.push(`/spec/issuerRef/kind must be Issuer or ClusterIssuer, got ${ref.kind}`);
  for (const f of ["duration", "renewBefore"])
    if (spec[f] !== undefined && !GO_DURATION.test(String(spec[f]))) out.push(`/spec/${f} is not a duration: ${spec[f]}`);
  for (const f of ["dnsNames", "uris", "ipAddresses", "emailAddresses"]) strings(spec[f], `/spec/${f}`, out);
  if (![spec.commonName, ...(spec.dnsNames ?? []), ...(spec.uris ?? []), ...(spec.ipAddresses ?? []),
    ...(spec.emailAddresses ?? [])].some(Boolean))
    out.push("/spec names no identity (commonName, dnsNames, uris, ipAddresses or emailAddresses)");
  const usages = ["signing", "digital signature", "content commitment", "key encipherment", "key agreement",
    "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any", "server auth",
    "client auth", "code signing", "email protection", "s/mime", "ipsec end system", "ipsec tunnel",
    "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc"];
  strings(spec.usages, "/spec/usages", out);
  for (const u of spec.usages ?? []) if (!usages.includes(u)) out.push(`/spec/usages: unknown usage ${u}`);
  const key = spec.privateKey ?? {};
  onlyKeys(key, ["algorithm", "size", "encoding", "rotationPolicy"], "/spec/privateKey", out);
  if (key.algorithm !== undefined && !["RSA", "ECDSA", "Ed25519"].includes(key.algorithm))
    out.push(`/spec/privateKey/algorithm must be RSA, ECDSA or Ed25519, got ${key.algorithm}`);
  if (key.rotationPolicy !== undefined && !["Never", "Always"].includes(key.rotationPolicy))
    out.push(`/spec/privateKey/rotationPolicy must be Never or Always, got ${key.rotationPolicy}`);
  if (key.size !== undefined && !Number.isInteger(key.size)) out.push("/spec/privateKey/size must be an integer");
  return out;
}
const CRD_CHECKS = { "cert-manager.io/v1/Certificate": checkCertificate };

// ----------------------------------------------------------- 1. schema
for (const o of objects) {
  const crd = CRD_CHECKS[`${o.doc.apiVersion}/${o.kind}`];
  if (crd) {
    for (const message of crd(o.doc)) problem(o.stream, o.id, `schema: ${message}`);
    o.unknown = true; // no TypeScript interface either: checked above
    continue;
  }
  let mod;
  try {
    mod = await import(o.mod);
  } catch {
    problem(o.stream, o.id, `unknown apiVersion ${o.doc.apiVersion}`);
    o.unknown = true;
    continue;
  }
  const Model = mod[o.kind];
  if (typeof Model !== "function" || Model.kind !== o.kind) {
    problem(o.stream, o.id, `unknown kind ${o.kind} in ${o.doc.apiVersion}`);
    o.unknown = true;
    continue;
  }
  try {
    new Model(o.doc).validate();
  } catch (e) {
    for (const err of e.errors ?? [{ instancePath: "", message: e.message }]) {
      const extra = err.params && err.keyword === "enum" ? ` (${JSON.stringify(err.params.allowedValues)})` : "";
      problem(o.stream, o.id, `schema: ${err.instancePath || "/"} ${err.message}${extra}`);
    }
  }
}

// ---------------------------------------------------- 2. unknown fields
{
  const known = objects.filter((o) => !o.unknown);
  const dir = mkdtempSync(path.join(here, ".strict-"));
  try {
    const imports = new Map();
    const ranges = [];
    let body = "";
    let line = 0;
    known.forEach((o, i) => {
      const alias = `T${i}`;
      imports.set(alias, `import type { I${o.kind} as ${alias} } from ${JSON.stringify(o.mod)};`);
      const text = `export const o${i}: ${alias} = ${JSON.stringify(o.doc, null, 2)};\n`;
      ranges.push({ from: line, to: line + text.split("\n").length - 1, o });
      line += text.split("\n").length - 1;
      body += text;
    });
    const header = [...imports.values()].join("\n") + "\n";
    const offset = header.split("\n").length - 1;
    const file = path.join(dir, "manifests.ts");
    writeFileSync(file, header + body);
    const program = ts.createProgram([file], {
      noEmit: true,
      strict: false, // null is "unset" in Kubernetes
      skipLibCheck: true,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      target: ts.ScriptTarget.ES2022,
      types: [],
      typeRoots: [],
    });
    const source = program.getSourceFile(file);
    const lines = source.text.split("\n");
    for (const diag of ts.getPreEmitDiagnostics(program)) {
      const message = ts.flattenDiagnosticMessageText(diag.messageText, " ");
      if (!diag.file || diag.file.fileName !== source.fileName) {
        problems.push(`type check: ${message}`);
        continue;
      }
      const { line: l } = source.getLineAndCharacterOfPosition(diag.start);
      const r = ranges.find((x) => l - offset >= x.from && l - offset < x.to);
      const where = (lines[l] ?? "").trim();
      if (r) problem(r.o.stream, r.o.id, `field: ${message} [at: ${where}]`);
      else problems.push(`type check: ${message} [at: ${where}]`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------ 3. project rules
function parseDuration(s) {
  // Abseil/Go durations: 1h2m3.5s, 500ms, 30s ...
  const units = { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6, ns: 1e-9 };
  const re = /(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)/gy;
  let total = 0;
  let m;
  let consumed = 0;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * units[m[2]];
    consumed = re.lastIndex;
  }
  return consumed === s.length && s.length > 0 ? total : NaN;
}
const subset = (sel = {}, labels = {}) =>
  Object.keys(sel).length > 0 && Object.entries(sel).every(([k, v]) => labels[k] === v);

const streams = [...new Set(objects.map((o) => o.stream))];
for (const stream of streams) {
  const mine = objects.filter((o) => o.stream === stream);
  const by = (kind) => mine.filter((o) => o.kind === kind);
  const named = (kind, name) => mine.find((o) => o.kind === kind && o.doc.metadata?.name === name);
  // Pod-owning workloads: the gateway's Deployment and, with
  // components/redis, the Redis StatefulSet. The pod template rules apply to
  // both; replicas and the shutdown grace period are the gateway's (Deployment).
  const workloads = [...by("Deployment"), ...by("StatefulSet")];

  for (const d of workloads) {
    const spec = d.doc.spec ?? {};
    const pod = spec.template?.spec ?? {};
    const podLabels = spec.template?.metadata?.labels ?? {};
    const isDeployment = d.kind === "Deployment";
    if (!subset(spec.selector?.matchLabels, podLabels))
      problem(stream, d.id, "selector.matchLabels does not match the pod template's labels");
    const hpa = by("HorizontalPodAutoscaler").find(
      (h) => h.doc.spec?.scaleTargetRef?.kind === d.kind && h.doc.spec?.scaleTargetRef?.name === d.doc.metadata.name);
    const replicas = hpa ? hpa.doc.spec.minReplicas ?? 1 : spec.replicas ?? 1;
    if (isDeployment && replicas < 2)
      problem(stream, d.id, `runs ${replicas} replica(s); 2+ are required (replicas or HPA minReplicas)`);
    if (hpa && spec.replicas !== undefined)
      notes.push(`${stream}: ${d.id}: spec.replicas is set although ${hpa.id} scales it; every apply resets the count`);

    const psc = pod.securityContext ?? {};
    if (psc.runAsNonRoot !== true) problem(stream, d.id, "pod securityContext.runAsNonRoot must be true");
    if (psc.seccompProfile?.type !== "RuntimeDefault") problem(stream, d.id, "pod seccompProfile must be RuntimeDefault");
    const env = {};
    for (const c of pod.containers ?? []) {
      const sc = c.securityContext ?? {};
      const cid = `${d.id} container ${c.name}`;
      if (sc.readOnlyRootFilesystem !== true) problem(stream, cid, "readOnlyRootFilesystem must be true");
      if (sc.allowPrivilegeEscalation !== false) problem(stream, cid, "allowPrivilegeEscalation must be false");
      if (!(sc.capabilities?.drop ?? []).includes("ALL")) problem(stream, cid, "capabilities must drop ALL");
      if (!c.resources?.requests || !c.resources?.limits) problem(stream, cid, "needs resource requests and limits");
      const ports = new Set((c.ports ?? []).map((p) => p.containerPort));
      for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
        const p = c[probe]?.grpc?.port ?? c[probe]?.httpGet?.port ?? c[probe]?.tcpSocket?.port;
        if (typeof p === "number" && !ports.has(p)) problem(stream, cid, `${probe} port ${p} is not a containerPort`);
      }
      for (const ref of c.envFrom ?? []) {
        const cm = ref.configMapRef?.name;
        if (cm && !named("ConfigMap", cm) && !ref.configMapRef.optional)
          problem(stream, cid, `envFrom ConfigMap ${cm} is not in the rendered set`);
        if (cm && named("ConfigMap", cm)) Object.assign(env, named("ConfigMap", cm).doc.data);
      }
      for (const e of c.env ?? []) {
        if (typeof e.value === "string") env[e.name] = e.value;
        const s = e.valueFrom?.secretKeyRef;
        if (s?.name && !named("Secret", s.name) && !s.optional)
          notes.push(`${stream}: ${cid} reads Secret ${s.name} (env ${e.name}), which must be created in namespace ${d.doc.metadata.namespace ?? "(default)"} (not rendered here)`);
      }
      for (const a of c.args ?? []) {
        const m = /^--([a-z_]+)=(.*)$/.exec(a);
        if (m) env[`CAMPAIGN_GATEWAY_${m[1].toUpperCase()}`] = m[2];
      }
    }
    for (const v of pod.volumes ?? []) {
      const s = v.secret?.secretName;
      const issued = mine.some((c) => c.kind === "Certificate" && c.doc.spec?.secretName === s);
      if (s && !named("Secret", s) && !issued)
        notes.push(`${stream}: ${d.id} mounts Secret ${s}, which must be created in namespace ${d.doc.metadata.namespace ?? "(default)"} (not rendered here)`);
      const cm = v.configMap?.name;
      if (cm && !named("ConfigMap", cm) && !v.configMap.optional)
        problem(stream, d.id, `volume ConfigMap ${cm} is not in the rendered set`);
    }
    if (isDeployment && ("CAMPAIGN_GATEWAY_SHUTDOWN_DRAIN" in env || "CAMPAIGN_GATEWAY_SHUTDOWN_TIMEOUT" in env)) {
      const drain = parseDuration(env.CAMPAIGN_GATEWAY_SHUTDOWN_DRAIN ?? "5s");
      const timeout = parseDuration(env.CAMPAIGN_GATEWAY_SHUTDOWN_TIMEOUT ?? "15s");
      const grace = pod.terminationGracePeriodSeconds ?? 30;
      if (Number.isNaN(drain) || Number.isNaN(timeout))
        problem(stream, d.id, "CAMPAIGN_GATEWAY_SHUTDOWN_DRAIN/_TIMEOUT are not durations");
      else if (grace < drain + timeout + 5)
        problem(stream, d.id, `terminationGracePeriodSeconds ${grace} < shutdown drain ${drain}s + timeout ${timeout}s + 5s margin`);
    }
  }

  const podsOf = (selector) => workloads.filter((d) => subset(selector, d.doc.spec?.template?.metadata?.labels));
  for (const s of by("Service")) {
    if (podsOf(s.doc.spec?.selector).length === 0) problem(stream, s.id, "selector matches no Deployment's or StatefulSet's pods");
    for (const p of s.doc.spec?.ports ?? []) {
      if (typeof p.targetPort === "string") {
        const ok = podsOf(s.doc.spec?.selector).some((d) =>
          (d.doc.spec.template.spec.containers ?? []).some((c) => (c.ports ?? []).some((cp) => cp.name === p.targetPort)));
        if (!ok) problem(stream, s.id, `targetPort ${p.targetPort} is no named containerPort`);
      }
    }
  }
  for (const p of by("PodDisruptionBudget"))
    if (podsOf(p.doc.spec?.selector?.matchLabels).length === 0) problem(stream, p.id, "selector matches no Deployment's or StatefulSet's pods");
  for (const n of by("NetworkPolicy"))
    if (podsOf(n.doc.spec?.podSelector?.matchLabels).length === 0) problem(stream, n.id, "podSelector matches no Deployment's or StatefulSet's pods");
  for (const h of by("HorizontalPodAutoscaler")) {
    const t = h.doc.spec?.scaleTargetRef ?? {};
    if (!named(t.kind, t.name)) problem(stream, h.id, `scaleTargetRef ${t.kind}/${t.name} is not in the rendered set`);
  }
  for (const s of by("Secret")) {
    const values = [
      ...Object.values(s.doc.stringData ?? {}),
      ...Object.values(s.doc.data ?? {}).map((v) => Buffer.from(String(v), "base64").toString("latin1")),
    ];
    if (values.some((v) => /[A-Za-z0-9]{40,}/.test(String(v))))
      problem(stream, s.id, "holds what looks like a real token (40+ letters/digits in a row); commit placeholders only");
  }
}

// ---------------------------------------------------------------- report
for (const stream of streams) {
  const mine = objects.filter((o) => o.stream === stream);
  console.log(`${stream}: ${mine.length} objects`);
  for (const o of mine) {
    const ns = o.doc.metadata?.namespace ? `  (namespace ${o.doc.metadata.namespace})` : "";
    console.log(`  ${o.doc.apiVersion.padEnd(28)} ${o.id}${ns}`);
  }
}
for (const n of notes) console.log(`note: ${n}`);
if (problems.length) {
  console.error(`\n${problems.length} problem(s):`);
  const order = (p) => streams.findIndex((s) => p.startsWith(`${s}: `));
  problems.sort((a, b) => order(a) - order(b)); // stable: by rendering, then check
  for (const p of problems) console.error(`  ERROR ${p}`);
  process.exit(1);
}
console.log(`\nall ${objects.length} objects in ${streams.length} rendering(s) are valid`);
