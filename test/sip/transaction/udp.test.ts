/**
 * The layer over real UDP sockets on 127.0.0.1: a UAC layer and a UAS layer exchange serialized
 * messages. A minimal test-only decoder stands in for lib/sip/parser.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import {
  createRequest,
  createResponse,
  createResponseObject,
  Headers,
  serialize,
  type SipMessage,
  type SipResponse,
} from '../../../lib/sip/message.js';
import { TransactionLayer, type Destination } from '../../../lib/sip/transaction/layer.js';

function decode(buf: Buffer): SipMessage {
  const text = buf.toString('utf8');
  const lines = text.slice(0, text.indexOf('\r\n\r\n')).split('\r\n');
  const h = new Headers();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    h.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const [a, b, ...rest] = lines[0]!.split(' ');
  if (a === 'SIP/2.0') return createResponseObject(Number(b), rest.join(' '), h);
  return createRequest(a!, b!, h);
}

function attach(socket: Socket, layer: () => TransactionLayer): void {
  socket.on('message', (buf, rinfo) => {
    const msg = decode(buf);
    const source: Destination = { transport: 'udp', address: rinfo.address, port: rinfo.port };
    if (msg.kind === 'request') layer().receiveRequest(msg, source);
    else layer().receiveResponse(msg, source);
  });
}

test('over real UDP sockets: OPTIONS -> 200 OK; a retransmitted request gets the same response bytes, absorbed by the UAC', { timeout: 5000 }, async () => {
  const uacSocket = createSocket('udp4');
  const uasSocket = createSocket('udp4');
  uacSocket.bind(0, '127.0.0.1');
  uasSocket.bind(0, '127.0.0.1');
  await Promise.all([once(uacSocket, 'listening'), once(uasSocket, 'listening')]);
  const sendVia = (socket: Socket) => (msg: SipMessage, dest: Destination) => socket.send(serialize(msg), dest.port, dest.address);

  let served = 0;
  const uas = new TransactionLayer({
    send: sendVia(uasSocket),
    tu: {
      onRequest(req, tx) {
        served++;
        tx!.respond(createResponse(req, 200, undefined, 'uastag'));
      },
    },
  });
  const uac = new TransactionLayer({ send: sendVia(uacSocket), tu: { onRequest() {} } });
  attach(uasSocket, () => uas);
  attach(uacSocket, () => uac);

  try {
    const uasAddr: Destination = { transport: 'udp', address: '127.0.0.1', port: uasSocket.address().port };
    const h = new Headers()
      .append('Via', `SIP/2.0/UDP 127.0.0.1:${uacSocket.address().port};branch=z9hG4bKudp1`)
      .append('Max-Forwards', '70')
      .append('From', '<sip:a@127.0.0.1>;tag=1')
      .append('To', '<sip:b@127.0.0.1>')
      .append('Call-ID', 'udp-call-1')
      .append('CSeq', '1 OPTIONS');
    const options = createRequest('OPTIONS', `sip:b@127.0.0.1:${uasAddr.port}`, h);
    const response = new Promise<SipResponse>((resolve, reject) => {
      const tx = uac.sendRequest(options, uasAddr, { onResponse: resolve, onTimeout: () => reject(new Error('timeout')) });
      assert.equal(tx.state, 'Trying');
    });
    const res = await response;
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('to'), '<sip:b@127.0.0.1>;tag=uastag');
    assert.equal(uac.stats.clientTransactions, 1, 'in Completed (Timer K)');
    assert.equal(uas.stats.serverTransactions, 1, 'in Completed (Timer J)');

    // The UAC's request again (as a retransmission would be): the UAS transaction answers with
    // the same response, which the UAC transaction, now in Completed, absorbs.
    const arrived = once(uacSocket, 'message');
    uacSocket.send(serialize(options), uasAddr.port, '127.0.0.1');
    const [again] = (await arrived) as [Buffer];
    assert.equal(again.toString('utf8').split('\r\n')[0], 'SIP/2.0 200 OK');
    assert.equal(again.equals(serialize(res)), true);
    assert.equal(served, 1, 'the TU saw the request once');
    assert.equal(uas.stats.retransmissionsAbsorbed, 1);
    assert.equal(uac.stats.retransmissionsAbsorbed, 1);
  } finally {
    uac.close();
    uas.close();
    uacSocket.close();
    uasSocket.close();
  }
});
