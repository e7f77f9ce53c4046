/**
 * The offer the server makes to user1 of a call-back: the server's media endpoint (both G.711
 * laws and telephone-event, for the ringback tone user1 hears while user2 rings), and with
 * `callback.video` a video stream too, so that two video phones get video once bridged. That
 * video line points at the discard port of the endpoint's address until user2 answers: what
 * user1 sends before then goes nowhere.
 */
const DISCARD_PORT = 9;

export function callBackOffer(address: string, audioPort: number, sessionId: number, video: boolean): string {
  const lines = [
    'v=0',
    `o=minisipserver ${sessionId} ${sessionId} IN IP4 ${address}`,
    's=minisipserver',
    `c=IN IP4 ${address}`,
    't=0 0',
    `m=audio ${audioPort} RTP/AVP 0 8 101`,
    'a=rtpmap:0 PCMU/8000',
    'a=rtpmap:8 PCMA/8000',
    'a=rtpmap:101 telephone-event/8000',
    'a=fmtp:101 0-15',
    'a=ptime:20',
    'a=sendrecv',
  ];
  if (video) {
    lines.push(
      `m=video ${DISCARD_PORT} RTP/AVP 96 97`,
      'a=rtpmap:96 H264/90000',
      'a=fmtp:96 profile-level-id=42e01f;packetization-mode=1',
      'a=rtpmap:97 VP8/90000',
      'a=sendrecv',
    );
  }
  return lines.join('\r\n') + '\r\n';
}
