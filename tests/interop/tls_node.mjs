// The Node.js driver over TLS (issue 14): tls with a CA file, then with a client
// certificate; a CA that did not sign the server's certificate is refused.
//
// Usage: node tls_node.mjs PORT CA_FILE CLIENT_PEM OTHER_CA_FILE

import { loadDriver, reporter } from './harness.mjs';

const { MongoClient } = loadDriver('tls_node');
const { fail, check } = reporter('tls_node');

const [port, ca, clientPem, otherCa] = process.argv.slice(2);

function uri(options) {
  const params = new URLSearchParams({
    directConnection: 'true', serverSelectionTimeoutMS: '3000', tls: 'true', ...options,
  });
  return `mongodb://127.0.0.1:${port}/?${params}`;
}

async function ping(options) {
  const client = new MongoClient(uri(options));
  try {
    return (await client.db('admin').command({ ping: 1 })).ok;
  } finally {
    await client.close();
  }
}

check((await ping({ tlsCAFile: ca })) === 1, 'ping over TLS with tlsCAFile');
check((await ping({ tlsCAFile: ca, tlsCertificateKeyFile: clientPem })) === 1,
  'ping with a client certificate');
try {
  await ping({ tlsCAFile: otherCa });
  fail('a server certificate from another CA was accepted');
} catch (e) {
  check(/certificate/i.test(String(e.message ?? e)), `another CA is refused: ${e.message}`);
}
console.log('tls_node: all checks passed');
