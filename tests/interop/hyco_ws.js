// Drives Microsoft's hyco-ws package against a relay, as a listener or a
// sender, so the tests can pair any two implementations.
//
//   node hyco_ws.js listen --relay wss://127.0.0.1:PORT --path NAME --key-name N --key K
//       echoes every message back; greets each new connection first.
//       Prints "LISTENING" once the control channel is open.
//   node hyco_ws.js send --relay ... --path NAME --key-name N --key K [--bytes N] [--messages N]
//       expects the greeting, sends text messages and one binary blob of
//       --bytes, checks every echo, prints one JSON result line.
//
// The hyco-ws URI helpers hard-code port 443, so URLs are built here.
'use strict';
const crypto = require('crypto');
const WebSocket = require('hyco-ws');

function args() {
  const out = { _: process.argv[2] };
  for (let i = 3; i < process.argv.length; i += 2) out[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
  return out;
}

const a = args();
const base = `${a.relay}/$hc/${a.path}`;
const httpUri = a.relay.replace(/^wss?:/, 'http:') + '/' + a.path;
const token = () => WebSocket.createRelayToken(httpUri, a['key-name'], a.key, Number(a['token-seconds'] || 3600));
const GREETING = 'hello from listener';

function listen() {
  const server = WebSocket.createRelayedServer({ server: `${base}?sb-hc-action=listen`, token }, (ws) => {
    // hyco-ws emits 'connection' before the rendezvous socket is open.
    ws.on('open', () => ws.send(GREETING));
    ws.on('message', (m, flags) => ws.send(m, { binary: !!(flags && flags.binary) }));
    ws.on('error', () => {});
  });
  server.on('listening', () => console.log('LISTENING'));
  server.on('error', (e) => console.error('listener error: ' + (e && e.message)));
  process.on('SIGTERM', () => { server.close(); process.exit(0); });
}

function send() {
  const bytes = Number(a.bytes || 0);
  const messages = Number(a.messages || 3);
  const result = { ok: false, greeting: false, texts: 0, binaryBytes: 0, sha256Match: false };
  const started = Date.now();
  const ws = WebSocket.relayedConnect(`${base}?sb-hc-action=connect`, token());
  const blob = crypto.randomBytes(bytes);
  const want = crypto.createHash('sha256').update(blob).digest('hex');
  const chunks = [];
  let got = 0;
  const finish = (ok, why) => {
    result.ok = ok;
    if (why) result.error = why;
    result.ms = Date.now() - started;
    console.log(JSON.stringify(result));
    process.exit(ok ? 0 : 1);
  };
  ws.on('error', (e) => finish(false, String(e && e.message)));
  ws.on('close', (code) => { if (!result.ok) finish(false, 'closed early: ' + code); });
  ws.on('message', (m, flags) => {
    if (!result.greeting) {
      result.greeting = m === GREETING;
      if (!result.greeting) return finish(false, 'no greeting');
      for (let i = 0; i < messages; i++) ws.send(`ping-${i}`);
      return;
    }
    if (result.texts < messages) {
      if (m !== `ping-${result.texts}`) return finish(false, `bad echo ${m}`);
      result.texts++;
      if (result.texts === messages) {
        if (!bytes) return finish(true);
        ws.send(blob, { binary: true });
      }
      return;
    }
    const buf = Buffer.isBuffer(m) ? m : Buffer.from(m);
    chunks.push(buf);
    got += buf.length;
    if (got >= bytes) {
      result.binaryBytes = got;
      result.sha256Match = crypto.createHash('sha256').update(Buffer.concat(chunks)).digest('hex') === want;
      finish(result.sha256Match, result.sha256Match ? null : 'sha256 mismatch');
    }
  });
  setTimeout(() => finish(false, 'timeout'), Number(a.timeout || 60) * 1000);
}

if (a._ === 'listen') listen();
else if (a._ === 'send') send();
else { console.error('usage: node hyco_ws.js listen|send --relay URL --path NAME --key-name N --key K'); process.exit(2); }
