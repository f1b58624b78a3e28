// What the Node.js interop scripts share: the pinned packages from the install folder
// (not beside the scripts), and one way to report each check.

import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
export const requireDeps = createRequire(path.join(here, '.deps', 'node', 'package.json'));

// `fail` and `check` that name the script in their messages.
export function reporter(script) {
  const fail = (message) => {
    console.error(`${script}: FAILED: ${message}`);
    process.exit(1);
  };
  const check = (condition, message) => {
    if (!condition) fail(message);
    console.log(`ok: ${message}`);
  };
  return { fail, check };
}

// The Node driver, or a clear failure saying how to install it.
export function loadDriver(script) {
  try {
    return requireDeps('mongodb');
  } catch (e) {
    console.error(`${script}: cannot load the mongodb package (${e.message}): run tests/interop/install.sh`);
    process.exit(1);
  }
}
