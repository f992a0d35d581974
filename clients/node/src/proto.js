// Loads the warren.v1 protos at run time with @grpc/proto-loader (no code
// generation step beyond copying the .proto files: see generate.sh).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * How messages look in JS. camelCase fields; 64-bit integers as decimal
 * strings (a fencing token or delivery id may exceed 2^53); enums as their
 * names; absent fields get their defaults; `oneofs` adds a field naming the
 * case that is set (e.g. `response.response === 'delivery'`).
 */
export const LOADER_OPTIONS = Object.freeze({
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});

const PROTO_FILES = ['warren/v1/config.proto', 'warren/v1/election.proto', 'warren/v1/lock.proto', 'warren/v1/messaging.proto'];

let cached = null;

/**
 * The warren.v1 package: { ConfigService, ElectionService, LockService,
 * MessagingService } client constructors. `protoDir` defaults to
 * generated/protos (made by generate.sh), or WARREN_PROTO_DIR.
 */
export function loadWarrenProtos(protoDir = process.env.WARREN_PROTO_DIR ?? path.join(here, '..', 'generated', 'protos')) {
  if (cached && cached.dir === protoDir) return cached.pkg;
  if (!fs.existsSync(path.join(protoDir, 'warren', 'v1', 'messaging.proto'))) {
    throw new Error(`warren protos not found under ${protoDir}: run clients/node/generate.sh first`);
  }
  const definition = protoLoader.loadSync(PROTO_FILES, { ...LOADER_OPTIONS, includeDirs: [protoDir] });
  const pkg = grpc.loadPackageDefinition(definition).warren.v1;
  cached = { dir: protoDir, pkg };
  return pkg;
}
