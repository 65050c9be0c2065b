// Writes the operations of the API document that take an `Idempotency-Key` header, as a TypeScript
// module the client reads to give every such request a key. Run by `npm run generate`.
//
//     node scripts/idempotent.mjs <openapi.json> <out.ts>
import { readFileSync, writeFileSync } from "node:fs";

export function idempotentModule(documentPath) {
  const document = JSON.parse(readFileSync(documentPath, "utf8"));
  const operations = [];
  for (const [path, item] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      const parameters = operation.parameters ?? [];
      if (parameters.some((p) => p.in === "header" && p.name.toLowerCase() === "idempotency-key")) {
        operations.push(`${method.toUpperCase()} ${path}`);
      }
    }
  }
  operations.sort();
  return [
    "// Generated from docs/openapi.json by scripts/idempotent.mjs (`npm run generate`): do not edit.",
    "",
    "/** The operations that take an `Idempotency-Key` header, as `METHOD /path/{param}/`. */",
    "export const IDEMPOTENT_OPERATIONS: ReadonlySet<string> = new Set([",
    ...operations.map((o) => `  ${JSON.stringify(o)},`),
    "]);",
    "",
  ].join("\n");
}

if (process.argv[1] && process.argv[1].endsWith("idempotent.mjs")) {
  const [documentPath, out] = process.argv.slice(2);
  writeFileSync(out, idempotentModule(documentPath));
}
