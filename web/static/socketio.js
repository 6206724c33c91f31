// A minimal Socket.IO 0.9 client (protocol revision 1), WebSocket transport
// only: what an ERS bridge needs and nothing more. The wire format is
// described in docs/protocol.md §1.

// Packet types of protocol revision 1.
export const DISCONNECT = 0, CONNECT = 1, HEARTBEAT = 2, MESSAGE = 3, JSON_MESSAGE = 4,
  EVENT = 5, ACK = 6, ERROR = 7, NOOP = 8;

// Texts of the numeric reasons an error packet may carry.
const errorReasons = ['transport not supported', 'client not handshaken', 'unauthorized'];

const connectTimeout = 10000; // ms, as the reference client

// decodePayload splits a frame into packet texts. Polling transports pack
// several packets as \ufffd<len>\ufffd<packet>...; a WebSocket frame normally
// holds one packet as it is.
export function decodePayload(text) {
  if (text[0] !== '\ufffd') return [text];
  const packets = [];
  let i = 0;
  while (i < text.length && text[i] === '\ufffd') {
    const end = text.indexOf('\ufffd', i + 1);
    if (end < 0) throw new Error('socket.io: unterminated payload length');
    const len = Number(text.slice(i + 1, end));
    if (!Number.isInteger(len) || len < 0) throw new Error('socket.io: bad payload length');
    // Lengths count UTF-16 code units, as the reference client counts them.
    packets.push(text.slice(end + 1, end + 1 + len));
    i = end + 1 + len;
  }
  return packets;
}

// parsePacket reads one packet, `type:id[+]:endpoint[:data]`, into
// {type, id, ack, endpoint, data} plus, by type:
//   event: name, args;  ack: ackId, args;  error: reason, advice.
export function parsePacket(text) {
  const c1 = text.indexOf(':');
  const c2 = c1 < 0 ? -1 : text.indexOf(':', c1 + 1);
  if (c2 < 0) throw new Error(`socket.io: malformed packet ${JSON.stringify(text.slice(0, 40))}`);
  const c3 = text.indexOf(':', c2 + 1);
  const type = Number(text.slice(0, c1));
  if (!Number.isInteger(type) || type < DISCONNECT || type > NOOP) {
    throw new Error(`socket.io: unknown packet type ${JSON.stringify(text.slice(0, c1))}`);
  }
  let id = text.slice(c1 + 1, c2);
  const ack = id.endsWith('+');
  if (ack) id = id.slice(0, -1);
  const p = {
    type, id, ack,
    endpoint: c3 < 0 ? text.slice(c2 + 1) : text.slice(c2 + 1, c3),
    data: c3 < 0 ? '' : text.slice(c3 + 1),
  };
  switch (type) {
    case EVENT: {
      const ev = JSON.parse(p.data);
      if (typeof ev?.name !== 'string') throw new Error('socket.io: event without a name');
      p.name = ev.name;
      p.args = Array.isArray(ev.args) ? ev.args : [];
      break;
    }
    case ACK: {
      // "<id>" or "<id>+<JSON array>"
      const plus = p.data.indexOf('+');
      p.ackId = plus < 0 ? p.data : p.data.slice(0, plus);
      p.args = plus < 0 ? [] : JSON.parse(p.data.slice(plus + 1));
      if (!Array.isArray(p.args)) p.args = [p.args];
      break;
    }
    case ERROR: {
      // "<reason>+<advice>"; reason and advice are numbers in the reference
      // server, but ERS bridges may send a plain text reason.
      const m = /^(.*?)(?:\+(\d+))?$/s.exec(p.data);
      const r = m[1];
      p.reason = /^\d+$/.test(r) && errorReasons[Number(r)] ? errorReasons[Number(r)] : r;
      p.advice = m[2] === undefined ? '' : m[2];
      break;
    }
  }
  return p;
}

// encodeEvent makes an event packet; with an ack id the server is asked to
// answer with data.
export function encodeEvent(name, args, ackId) {
  return `5:${ackId === undefined ? '' : ackId + '+'}::${JSON.stringify({ name, args })}`;
}

// takeEarly returns, once, the session index.html opened to origin before
// its modules loaded: {handshake (a promise of {ok, status, statusText,
// body}), ws (null unless the handshake offered websocket), events (what
// ws received meanwhile: ['message', data] or ['close', code, reason])}.
function takeEarly(origin) {
  const early = globalThis.ersmeshEarly;
  if (!early || early.taken || early.origin !== origin) return null;
  early.taken = true;
  return early;
}

// Socket is one Socket.IO session with a server. Events from the server are
// delivered to on(name, fn) listeners, as are the pseudo-events 'connect',
// 'disconnect' (reason) and 'error' (reason). A Socket connects once; make a
// new one to reconnect.
export class Socket {
  // origin: the server's origin URL ("https://bridge.example.org:4545").
  constructor(origin, { log = () => {} } = {}) {
    this.origin = new URL(origin).origin;
    this.connected = false;
    this.closed = false;
    this._log = log;
    this._listeners = new Map();
    this._acks = new Map();
    this._nextId = 1;
    this._ws = null;
    this.early = false;  // took over the page's early session (takeEarly)
    this._retryFresh = false;
    this._timeout = 0;   // heartbeat timeout in ms, 0 for none
    this._timer = null;
  }

  on(name, fn) {
    if (!this._listeners.has(name)) this._listeners.set(name, new Set());
    this._listeners.get(name).add(fn);
    return this;
  }

  off(name, fn) {
    this._listeners.get(name)?.delete(fn);
    return this;
  }

  _fire(name, args) {
    for (const fn of [...(this._listeners.get(name) ?? [])]) {
      try {
        fn(...args);
      } catch (err) {
        console.error('[socket.io] listener for', name, 'failed:', err);
      }
    }
  }

  // connect does the handshake and opens the WebSocket. Failures arrive as
  // an 'error' event; success as 'connect' once the server's 1:: arrives.
  // The first Socket to the page's own bridge takes over the session the
  // page opened while its modules loaded (index.html), if there is one.
  async connect() {
    const early = takeEarly(this.origin);
    this.early = !!early;
    this._retryFresh = !!early;
    let sid, heartbeat, transports;
    try {
      ({ sid, heartbeat, transports } = await this._handshake(early));
    } catch (err) {
      this._fail(err.message);
      return;
    }
    if (this.closed) {
      early?.ws?.close();
      return;
    }
    if (!transports.includes('websocket')) {
      this._fail(`the server offers no websocket transport (only ${transports.join(', ') || 'none'})`);
      return;
    }
    this._timeout = heartbeat * 1000;
    const url = new URL(`/socket.io/1/websocket/${sid}`, this.origin);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws = early?.ws ?? null;
    if (!ws) {
      try {
        ws = new WebSocket(url);
      } catch (err) {
        this._fail(`cannot open ${url}: ${err.message}`);
        return;
      }
    }
    this._ws = ws;
    this._arm(connectTimeout, 'no connect packet within 10 s');
    const onClose = (code, reason) => this._shutdown(this.connected
      ? `connection closed (${code}${reason ? ' ' + reason : ''})`
      : `cannot open the WebSocket to ${this.origin} (${code})`);
    ws.onmessage = (e) => this._onFrame(e.data);
    ws.onerror = () => this._log('websocket error');
    ws.onclose = (e) => onClose(e.code, e.reason);
    // What the page's session received before this Socket took it.
    for (const [kind, a, b] of early?.ws ? early.events.splice(0) : []) {
      if (this._ws !== ws) break; // closed meanwhile
      if (kind === 'message') this._onFrame(a);
      else onClose(a, b);
    }
  }

  async _handshake(early) {
    let res, body;
    if (early) {
      try {
        ({ body, ...res } = await early.handshake);
      } catch (err) {
        throw new Error(`cannot reach ${this.origin}: ${err.message}`);
      }
    } else {
      const url = new URL(`/socket.io/1/?t=${Date.now()}`, this.origin);
      // The bridge is often on another origin; ERS clients send cookies
      // (withCredentials), so do the same.
      const crossOrigin = this.origin !== location.origin;
      const ctl = new AbortController();
      const timer = setTimeout(() => ctl.abort(), connectTimeout);
      try {
        res = await fetch(url, { credentials: crossOrigin ? 'include' : 'same-origin', signal: ctl.signal, cache: 'no-store' });
        body = (await res.text()).trim();
      } catch (err) {
        throw new Error(`cannot reach ${this.origin}: ${err.name === 'AbortError' ? 'no answer within 10 s' : err.message}`);
      } finally {
        clearTimeout(timer);
      }
    }
    if (!res.ok) {
      const why = res.status === 404 ? 'no ERS endpoint there' : body.slice(0, 200) || res.statusText;
      throw new Error(`handshake with ${this.origin} refused: HTTP ${res.status} (${why})`);
    }
    const [sid, hb, , transports = ''] = body.split(':');
    if (!sid || !/^\d*$/.test(hb ?? '')) throw new Error(`handshake with ${this.origin}: unexpected answer ${JSON.stringify(body.slice(0, 80))}`);
    return { sid, heartbeat: Number(hb || 0), transports: transports.split(',').filter(Boolean) };
  }

  // _arm (re)starts the watchdog: the connection is dropped when nothing is
  // heard for ms.
  _arm(ms, reason) {
    clearTimeout(this._timer);
    if (ms > 0) this._timer = setTimeout(() => this._shutdown(reason), ms);
  }

  _onFrame(text) {
    if (typeof text !== 'string') return; // protocol rev 1 is text only
    if (this.connected) this._arm(this._timeout, 'heartbeat timeout');
    let packets;
    try {
      packets = decodePayload(text);
    } catch (err) {
      this._log(err.message);
      return;
    }
    for (const raw of packets) {
      let p;
      try {
        p = parsePacket(raw);
      } catch (err) {
        this._log(err.message);
        continue;
      }
      if (p.endpoint !== '') continue; // namespaces are not used by ERS
      this._onPacket(p);
    }
  }

  _onPacket(p) {
    switch (p.type) {
      case CONNECT:
        if (this.connected) return;
        this.connected = true;
        this._arm(this._timeout, 'heartbeat timeout');
        this._fire('connect', []);
        break;
      case HEARTBEAT:
        this._send('2::');
        break;
      case EVENT: {
        const args = [...p.args];
        if (p.id !== '' && p.ack) {
          let answered = false;
          args.push((...data) => {
            if (answered) return;
            answered = true;
            this._send(`6:::${p.id}+${JSON.stringify(data)}`);
          });
        }
        this._fire(p.name, args);
        break;
      }
      case ACK: {
        const fn = this._acks.get(p.ackId);
        this._acks.delete(p.ackId);
        if (fn) fn(...p.args);
        break;
      }
      case ERROR:
        this._log(`server error: ${p.reason}${p.advice ? ' (advice ' + p.advice + ')' : ''}`);
        this._fire('error', [p.reason]);
        // "client not handshaken" means the session is gone for good.
        if (p.reason === errorReasons[1]) this._shutdown('the server does not know this session');
        break;
      case DISCONNECT:
        this._shutdown('the server ended the session');
        break;
      // MESSAGE, JSON_MESSAGE and NOOP carry nothing ERS uses.
    }
  }

  _send(text) {
    if (this._ws?.readyState === WebSocket.OPEN) this._ws.send(text);
  }

  // emit sends an event. If the last argument is a function, the server is
  // asked for an ack and the function gets the ack's arguments.
  emit(name, ...args) {
    let fn;
    if (typeof args[args.length - 1] === 'function') fn = args.pop();
    if (!this.connected) {
      this._log(`not connected; dropping ${name}`);
      return false;
    }
    let id;
    if (fn) {
      id = String(this._nextId++);
      this._acks.set(id, fn);
    }
    this._send(encodeEvent(name, args, id));
    return true;
  }

  // close ends the session; no 'disconnect' event follows a close.
  close() {
    if (this.closed) return;
    this._send('0::');
    this.closed = true;
    this._teardown();
  }

  // _retryFresh reports, once, whether a failure before 'connect' is the
  // page's early session's (index.html): a session handed out with a
  // page the browser kept, or one that expired while the modules loaded.
  // The Socket then handshakes afresh, as if it had had none.
  _freshAfterEarly(reason) {
    if (this.connected || !this._retryFresh) return false;
    this._retryFresh = false;
    this.early = false;
    this._log(`the page's early session failed (${reason}); handshaking afresh`);
    this._teardown();
    this.connect();
    return true;
  }

  _fail(reason) {
    if (this.closed || this._freshAfterEarly(reason)) return;
    this.closed = true;
    this._teardown();
    this._fire('error', [reason]);
  }

  _shutdown(reason) {
    if (this.closed || this._freshAfterEarly(reason)) return;
    const was = this.connected;
    this.closed = true;
    this._teardown();
    if (was) this._fire('disconnect', [reason]);
    else this._fire('error', [reason]);
  }

  _teardown() {
    clearTimeout(this._timer);
    this.connected = false;
    this._acks.clear(); // their answers can never come
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onmessage = ws.onerror = ws.onclose = null;
      try {
        ws.close();
      } catch { /* already closing */ }
    }
  }
}
