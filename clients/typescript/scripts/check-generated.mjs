// Fails when the generated files differ from what docs/openapi.json generates now: the client's
// types are the API document's, never a hand-edited or stale copy. Run by `.ci/run`.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { idempotentModule } from "./idempotent.mjs";

const document = "../../docs/openapi.json";
const scratch = mkdtempSync(join(tmpdir(), "points-client-"));
const fresh = join(scratch, "schema.ts");
execFileSync("node_modules/.bin/openapi-typescript", [document, "-o", fresh], { stdio: "ignore" });
const stale = [];
if (readFileSync(fresh, "utf8") !== readFileSync("src/schema.ts", "utf8")) {
  stale.push("src/schema.ts");
}
if (idempotentModule(document) !== readFileSync("src/idempotent.ts", "utf8")) {
  stale.push("src/idempotent.ts");
}
if (stale.length > 0) {
  console.error(`stale: ${stale.join(", ")} — run \`npm run generate\` in clients/typescript and commit`);
  process.exit(1);
}
console.log("generated types match docs/openapi.json");
