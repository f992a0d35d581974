// TLS, client certificates and bearer tokens, against the TLS + auth warrends
// of `scripts/with-warrend.sh --secure` (WARREN_TEST_TLS_ADDRESS takes an
// optional client certificate, WARREN_TEST_MTLS_ADDRESS requires one), and the
// plaintext token interceptor against an in-process server.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { Warren, loadWarrenProtos, optionsFromEnv } from '../../src/index.js';
import { nextEvent, uniq } from '../helpers.js';

const {
  WARREN_TEST_TLS_ADDRESS: tlsAddress, WARREN_TEST_MTLS_ADDRESS: mtlsAddress,
  WARREN_TEST_TLS_CA: caFile, WARREN_TEST_TLS_CERT: certFile, WARREN_TEST_TLS_KEY: keyFile,
  WARREN_TEST_TOKEN: token,
} = process.env;
const skip = tlsAddress && mtlsAddress ? false : 'needs scripts/with-warrend.sh --secure';

const clients = [];
function connect(address, options) {
  const client = new Warren(address, { timeoutMs: 10_000, ...options });
  clients.push(client);
  return client;
}
after(() => clients.forEach((c) => c.close()));
const code = (want) => (e) => {
  assert.equal(e.code, want, e.message);
  return true;
};
// A failed handshake is UNAVAILABLE, which the retry rule retries until the
// deadline: a short one keeps these tests quick.
const briefly = { timeoutMs: 1000 };

test('TLS with the CA and a token succeeds; without a token, or a wrong one, UNAUTHENTICATED', { skip }, async () => {
  const key = `node/${uniq('secure')}/k`;
  const client = connect(tlsAddress, { caFile, token });
  await client.putConfig(key, 'over tls');
  assert.equal((await client.getConfig(key)).value.toString(), 'over tls');
  await assert.rejects(connect(tlsAddress, { caFile }).getConfig(key), (e) =>
    code(grpc.status.UNAUTHENTICATED)(e) && /missing bearer token/.test(e.details));
  await assert.rejects(connect(tlsAddress, { caFile, token: 'wrong-token-000000000000' }).getConfig(key),
    code(grpc.status.UNAUTHENTICATED));
});

test('mutual TLS: no client certificate fails the handshake, the right one succeeds', { skip }, async () => {
  const key = `node/${uniq('mtls')}/k`;
  await assert.rejects(connect(mtlsAddress, { caFile, token }).getConfig(key, briefly), code(grpc.status.UNAVAILABLE));
  // The certificate alone authenticates (principal CN=warren-test-client).
  const client = connect(mtlsAddress, { caFile, certFile, keyFile });
  await client.putConfig(key, 'mutual');
  assert.equal((await client.getConfig(key)).value.toString(), 'mutual');
});

test("the server's certificate is verified", { skip }, async () => {
  const key = `node/${uniq('verify')}/k`;
  // Not signed by the system's CAs; not issued to another name.
  await assert.rejects(connect(tlsAddress, { tls: true, token }).getConfig(key, briefly), code(grpc.status.UNAVAILABLE));
  await assert.rejects(connect(tlsAddress, { caFile, serverName: 'other.example', token }).getConfig(key, briefly),
    code(grpc.status.UNAVAILABLE));
  // The certificate names localhost too (getConfig: null for a missing key).
  assert.equal(await connect(tlsAddress, { caFile, serverName: 'localhost', token }).getConfig(key), null);
});

test('a WatchConfig stream carries the token', { skip }, async () => {
  const key = `node/${uniq('secure-watch')}/k`;
  const client = connect(tlsAddress, { caFile, token });
  await client.putConfig(key, 'one');
  const watcher = client.watchConfig(key);
  await watcher.ready({ timeoutMs: 10_000 });
  assert.equal(watcher.value.toString(), 'one');
  const changed = nextEvent(watcher, 'change');
  await client.putConfig(key, 'two');
  assert.equal((await changed).entry.value.toString(), 'two');
  await watcher.close();
});

test('Warren.fromEnv reads the C++ client\'s variables', { skip }, async () => {
  const key = `node/${uniq('secure-env')}/k`;
  const viaToken = Warren.fromEnv({}, { WARREN_ADDRESS: tlsAddress, WARREN_TLS_CA: caFile, WARREN_TOKEN: token });
  clients.push(viaToken);
  await viaToken.putConfig(key, 'env');
  const viaCert = Warren.fromEnv({}, {
    WARREN_ADDRESS: mtlsAddress, WARREN_TLS_CA: caFile, WARREN_TLS_CERT: certFile, WARREN_TLS_KEY: keyFile,
  });
  clients.push(viaCert);
  assert.equal((await viaCert.getConfig(key)).value.toString(), 'env');
});

test('optionsFromEnv: WARREN_TLS switches TLS on, "0" and "false" do not', () => {
  assert.deepEqual(optionsFromEnv({ WARREN_TLS: '1', WARREN_TOKEN: 't' }), { tls: true, token: 't' });
  assert.deepEqual(optionsFromEnv({ WARREN_TLS: 'false' }), {});
  assert.deepEqual(optionsFromEnv({ WARREN_TLS: '0', WARREN_TLS_SERVER_NAME: 'w' }), { serverName: 'w' });
  assert.throws(() => new Warren('127.0.0.1:1', { certFile: 'client.crt' }), /certificate and key go together/);
  assert.throws(() => new Warren('127.0.0.1:1', { caFile: '/nonexistent/ca.crt' }), /\/nonexistent\/ca\.crt/);
});

test('over plaintext the token goes on unary calls and streams (interceptor)', async () => {
  const pkg = loadWarrenProtos();
  const server = new grpc.Server();
  const authorization = (call) => Buffer.from(call.metadata.get('authorization').join(','));
  server.addService(pkg.ConfigService.service, {
    getConfig(call, callback) {
      callback(null, { entry: { key: call.request.key, value: authorization(call) } });
    },
    watchConfig(call) {
      call.write({ initialState: true, events: [{ type: 'CONFIG_EVENT_TYPE_PUT', entry: { key: call.request.key, value: authorization(call) } }] });
    },
  });
  const port = await new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  try {
    const client = connect(`127.0.0.1:${port}`, { token: 't0ken-for-plaintext' });
    assert.equal((await client.getConfig('k')).value.toString(), 'Bearer t0ken-for-plaintext');
    const call = client.raw.config.watchConfig({ key: 'k' });
    const [first] = await new Promise((resolve, reject) => {
      call.once('data', (d) => resolve([d]));
      call.once('error', reject);
    });
    assert.equal(first.events[0].entry.value.toString(), 'Bearer t0ken-for-plaintext');
    call.cancel();
    call.on('error', () => {}); // the cancellation
  } finally {
    server.forceShutdown();
  }
});
