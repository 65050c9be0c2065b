// A fresh local host for a test: `target/debug/local-api` (built by `cargo build -p local-api`) on a
// free port with an empty data directory, stopped when the test ends.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
// dist/test/ → the repository's root.
const ROOT = resolve(here, "..", "..", "..", "..");
export const PASSWORD = "correct horse battery staple";

async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => done(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export interface LocalHost {
  base: string;
  stop(): Promise<void>;
  /** POSTs a form (the ECPay simulator's pages). */
  postForm(path: string, fields: Record<string, string>): Promise<Response>;
}

export async function startHost(env: Record<string, string> = {}): Promise<LocalHost> {
  const port = await freePort();
  const workdir = mkdtempSync(join(tmpdir(), "points-client-"));
  const log = openSync(join(workdir, "host.log"), "w");
  const child: ChildProcess = spawn(join(ROOT, "target", "debug", "local-api"), [], {
    env: { ...process.env, PORT: String(port), DATA_DIR: join(workdir, "data"), ...env },
    stdio: ["ignore", log, log],
  });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const answer = await fetch(base + "/api/openapi.json");
      if (answer.ok) {
        break;
      }
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`the local host did not start: see ${join(workdir, "host.log")}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    },
    postForm(path, fields) {
      return fetch(base + path, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(fields).toString(),
      });
    },
  };
}
