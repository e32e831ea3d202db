'use strict';
// Fastify comparison server for benchmarks/per_core.sh: the HTTP side of
// meshhook-ingest written the way a Node.js user would, to size one core
// against it.
//
// What it does, per POST /webhooks/mesh:
//   - reads the raw body (a content-type parser that keeps the Buffer),
//   - verifies X-Mesh-Signature-256 (base64 of HMAC-SHA256 over the exact
//     body bytes, the secret from MESH_WEBHOOK_SECRET; crypto.createHmac and
//     crypto.timingSafeEqual), 401 on a missing or wrong signature,
//   - JSON.parse of the body (400 if it is not JSON),
//   - answers 200 with a small JSON body naming the event and transfer, as
//     meshhook-ingest does.
// What it does not do: no Kafka (nothing is stored: its 200 is the cost of
// HTTP, verification and parsing only), no field validation or routing by
// event type, no replay window, no metrics, no request log (Fastify's logger
// is off). Compare it with meshhook-ingest knowing that ingest does more.
//
// usage: MESH_WEBHOOK_SECRET=S node server.js HOST PORT
const crypto = require('node:crypto');
const fastify = require('fastify');

const [host, portText] = process.argv.slice(2);
const secret = process.env.MESH_WEBHOOK_SECRET;
if (!host || !portText || !secret) {
  process.stderr.write('usage: MESH_WEBHOOK_SECRET=S node server.js HOST PORT\n');
  process.exit(2);
}

const app = fastify({ logger: false, bodyLimit: 64 * 1024 });

// Keep the exact bytes: the signature is over them, not over a re-serialised object.
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', { parseAs: 'buffer' }, (request, body, done) => done(null, body));

function signatureOk(header, body) {
  if (typeof header !== 'string') return false;
  const expected = Buffer.from(header.trim(), 'base64');
  if (expected.length !== 32) return false;
  const actual = crypto.createHmac('sha256', secret).update(body).digest();
  return crypto.timingSafeEqual(actual, expected);
}

app.post('/webhooks/mesh', (request, reply) => {
  const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
  if (!signatureOk(request.headers['x-mesh-signature-256'], body)) {
    reply.code(401).send({ error: 'invalid_signature' });
    return;
  }
  let event;
  try {
    event = JSON.parse(body);
  } catch {
    reply.code(400).send({ error: 'malformed_json' });
    return;
  }
  reply.code(200).send({ status: 'accepted', eventId: event.EventId, transferId: event.TransferId });
});

const stop = () => app.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

app.listen({ host, port: Number(portText) }).then(
  (address) => process.stdout.write(`fastify: listening on ${address}\n`),
  (err) => {
    process.stderr.write(`fastify: ${err.message}\n`);
    process.exit(1);
  });
