// The archive in IndexedDB: every message received or sent by this browser, by
// server and user. A received message is stored before it is acknowledged, and its
// server id makes it a single record however often the server delivers it.

const DATABASE = "mailslot";
const MESSAGES = "messages";

function done(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function finished(transaction) {
  return new Promise((resolve, reject) => {
    transaction.oncomplete = () => resolve();
    transaction.onerror = () => reject(transaction.error);
    transaction.onabort = () => reject(transaction.error || new Error("IndexedDB transaction aborted"));
  });
}

export class Archive {
  static async open() {
    const request = indexedDB.open(DATABASE, 1);
    request.onupgradeneeded = () => {
      const store = request.result.createObjectStore(MESSAGES, { keyPath: "key" });
      store.createIndex("owner", "owner");
    };
    return new Archive(await done(request));
  }

  constructor(db) {
    this.db = db;
  }

  // Stores what is not stored yet; resolves, once it is on disk, with the messages
  // that are new to this browser, oldest first.
  async saveReceived(owner, messages) {
    const transaction = this.db.transaction(MESSAGES, "readwrite", { durability: "strict" });
    const store = transaction.objectStore(MESSAGES);
    const fresh = [];
    const seen = new Set();
    for (const message of messages) {
      if (seen.has(message.id)) continue;
      seen.add(message.id);
      const key = `${owner}|in|${message.id}`;
      store.get(key).onsuccess = (event) => {
        if (event.target.result !== undefined) return;
        const record = {
          key, owner, kind: "in", id: message.id, from: message.from, at: message.at,
          text: message.text, unread: true,
        };
        fresh.push(record);
        store.put(record);
      };
    }
    await finished(transaction);
    return fresh;
  }

  async saveSent(owner, sent) {
    const transaction = this.db.transaction(MESSAGES, "readwrite");
    transaction.objectStore(MESSAGES).put({ key: `${owner}|out|${sent.id}`, owner, kind: "out", ...sent });
    await finished(transaction);
  }

  async markRead(owner) {
    const transaction = this.db.transaction(MESSAGES, "readwrite");
    const store = transaction.objectStore(MESSAGES);
    const records = await done(store.index("owner").getAll(owner));
    for (const record of records) {
      if (record.unread) store.put({ ...record, unread: false });
    }
    await finished(transaction);
  }

  // Newest first.
  async list(owner, kind) {
    const transaction = this.db.transaction(MESSAGES, "readonly");
    const records = await done(transaction.objectStore(MESSAGES).index("owner").getAll(owner));
    return records
      .filter((record) => kind === undefined || record.kind === kind)
      .sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : b.id - a.id));
  }

  // Every word of the query must appear in the text or a name (case-insensitive).
  async search(owner, query) {
    const words = fold(query).split(/\s+/).filter(Boolean);
    const records = await this.list(owner);
    return records.filter((record) => {
      const haystack = fold([record.text, record.from || "", ...(record.to || [])].join(" "));
      return words.every((word) => haystack.includes(word));
    });
  }
}

export function fold(text) {
  return text.normalize("NFKC").toLowerCase();
}
