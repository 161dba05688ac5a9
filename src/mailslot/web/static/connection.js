// One WebSocket to the server's /ws: each text message is one protocol frame
// (docs/protocol.md). Requests get ids and promises; events are dispatched.

export class ServerError extends Error {
  constructor(reply) {
    super(reply.message || reply.error);
    this.code = reply.error;
    this.reply = reply;
  }
}

export class ConnectionLost extends Error {
  constructor(reason) {
    super(reason ? `The connection was closed (${reason}).` : "The connection was lost.");
    this.code = "connection_lost";
    this.reason = reason;
  }
}

export function socketUrl(location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

export class Connection extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.socket = null;
    this.welcome = null;
    this.nextId = 1;
    this.pending = new Map();
    this.closingReason = null;
  }

  get open() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN && this.welcome !== null;
  }

  // Resolves with the server's welcome frame once connected; rejects when the socket fails.
  connect() {
    return new Promise((resolve, reject) => {
      let settled = false;
      const socket = new WebSocket(this.url);
      this.socket = socket;
      this.welcome = null;
      this.closingReason = null;
      socket.addEventListener("message", (event) => {
        let frame;
        try {
          frame = JSON.parse(event.data);
        } catch {
          return; // not a frame: nothing sensible to do with it
        }
        if (frame.event === "welcome" && !settled) {
          settled = true;
          this.welcome = frame;
          resolve(frame);
          return;
        }
        this.receive(frame);
      });
      socket.addEventListener("close", (event) => {
        if (this.socket === socket) this.socket = null;
        const lost = new ConnectionLost(this.closingReason);
        for (const { reject: fail } of this.pending.values()) fail(lost);
        this.pending.clear();
        if (!settled) {
          settled = true;
          reject(new ConnectionLost(this.closingReason || (event.code === 1006 ? null : `code ${event.code}`)));
        } else {
          this.dispatchEvent(new CustomEvent("closed", { detail: { reason: this.closingReason } }));
        }
      });
    });
  }

  receive(frame) {
    if (typeof frame.event === "string") {
      if (frame.event === "closing") this.closingReason = frame.reason;
      this.dispatchEvent(new CustomEvent("frame", { detail: frame }));
      return;
    }
    const waiter = this.pending.get(frame.id);
    if (waiter === undefined) return;
    this.pending.delete(frame.id);
    if (frame.ok) waiter.resolve(frame);
    else waiter.reject(new ServerError(frame));
  }

  request(op, fields = {}) {
    if (!this.open) return Promise.reject(new ConnectionLost(null));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify({ op, id, ...fields }));
    });
  }

  close() {
    const socket = this.socket;
    this.socket = null;
    if (socket !== null) {
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ op: "bye" }));
      socket.close(1000);
    }
  }
}
