// The WSE console. It uses only the public HTTP API (`Authorization: apikey <key>`) and the
// client WebSocket protocol, so it doubles as an example of a browser client:
//   - polls GET /api/info every second (connections, topics, message rates, cluster peers);
//   - shows GET /api/presence?topic=T for the watched topic;
//   - publishes with POST /api/publish;
//   - mints a token with POST /api/token, sets the `access_token` cookie, opens /wse,
//     subscribes with `subscription_update` and lists what arrives.
// No framework, no build step, no inline handlers (works under a strict CSP).
'use strict';

const KEY_STORAGE = 'wse.console.apiKey';
const POLL_MS = 1000;
const REQUEST_TIMEOUT_MS = 5000;
const GRAPH_SECONDS = 60;
const FEED_MAX_LINES = 200;
const FEED_MAX_CHARS = 2000;
// The server closes connections idle for 60 s (4408); a ping every 15 s keeps ours alive.
const CLIENT_PING_MS = 15000;
const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 30000;

const $ = (id) => document.getElementById(id);

const state = {
  running: false,
  pollTimer: null,
  previous: null, // the last /api/info answer, for rates
  samples: [], // {at: uptime_secs, rx, tx} per poll, last GRAPH_SECONDS
  topic: null, // the watched topic
};

const feed = {
  ws: null,
  ready: false, // server_ready received
  subscribed: null, // the topic the socket is subscribed to
  generation: 0, // bumped on every (re)connect or stop: stale callbacks do nothing
  pingTimer: null,
  retryTimer: null,
  retryMs: RECONNECT_MIN_MS,
  queue: Promise.resolve(), // frames are handled in order even when one needs inflating
};

// ---------------------------------------------------------------- HTTP API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  describe() {
    return this.status ? `${this.message} (${this.status} ${this.code})` : this.message;
  }
}

// One API call. Resolves with the parsed JSON answer; rejects with an ApiError carrying the
// API's own `{"error": {"code", "message"}}` when there is one.
async function api(method, path, body) {
  const headers = { Authorization: 'apikey ' + sessionStorage.getItem(KEY_STORAGE) };
  const init = { method, headers, cache: 'no-store', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    const message = e.name === 'TimeoutError' ? 'request timed out' : 'server unreachable';
    throw new ApiError(0, 'network', message);
  }
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: reported below when the status is an error
  }
  if (!response.ok) {
    const error = json && json.error;
    throw new ApiError(
      response.status,
      (error && error.code) || 'http_error',
      (error && error.message) || text || response.statusText,
    );
  }
  return json;
}

// ---------------------------------------------------------------- small helpers

function setState(id, text, kind) {
  const el = $(id);
  el.textContent = text;
  el.className = 'state' + (kind ? ' ' + kind : '');
}

function cell(row, text) {
  const td = document.createElement('td');
  td.textContent = text;
  row.appendChild(td);
}

function formatUptime(secs) {
  const s = Math.floor(secs);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return (h ? `${h}h ` : '') + (h || m ? `${m}m ` : '') + `${s % 60}s`;
}

function formatRate(perSec) {
  return perSec >= 100 ? perSec.toFixed(0) : perSec.toFixed(1);
}

// ---------------------------------------------------------------- polling /api/info

async function poll() {
  if (!state.running) return;
  try {
    const info = await api('GET', '/api/info');
    if (!state.running) return;
    renderInfo(info);
    setState('api-state', 'API: ok', 'ok');
  } catch (e) {
    if (e.status === 401) {
      logout('The API key was refused.');
      return;
    }
    setState('api-state', 'API: ' + e.describe(), 'bad');
  }
  if (state.topic) await refreshPresence(state.topic);
  if (state.running) state.pollTimer = setTimeout(poll, POLL_MS);
}

function renderInfo(info) {
  $('connections').textContent = String(info.connections);
  $('uptime').textContent = formatUptime(info.uptime_secs);
  addSample(info);
  const last = state.samples[state.samples.length - 1];
  $('rx-rate').textContent = last ? formatRate(last.rx) : '–';
  $('tx-rate').textContent = last ? formatRate(last.tx) : '–';
  drawGraph();
  renderTopics(info.topics);
  renderCluster(info.cluster);
}

// `cluster` is null on a single node, else this node's instance id and its live peer links.
function renderCluster(cluster) {
  const body = $('cluster-peers');
  body.replaceChildren();
  if (!cluster) {
    $('cluster-state').textContent = 'single node (no cluster configured)';
    return;
  }
  const n = cluster.peers.length;
  $('cluster-state').textContent =
    `instance ${cluster.instance_id}: ${n} peer${n === 1 ? '' : 's'} linked`;
  for (const peer of cluster.peers) {
    const row = document.createElement('tr');
    row.dataset.peer = peer.address;
    cell(row, peer.address);
    cell(row, peer.instance_id);
    cell(row, new Date(peer.connected_at).toISOString());
    body.appendChild(row);
  }
}

// Rates come from successive counters over the server's own elapsed time (uptime_secs).
function addSample(info) {
  const prev = state.previous;
  state.previous = info;
  if (!prev) return;
  const dt = info.uptime_secs - prev.uptime_secs;
  if (dt < 0) state.samples = []; // the server restarted
  if (!(dt > 0)) return;
  const rate = (now, before) => Math.max(0, now - before) / dt;
  state.samples.push({
    at: info.uptime_secs,
    rx: rate(info.messages_received_total, prev.messages_received_total),
    tx: rate(info.messages_sent_total, prev.messages_sent_total),
  });
  while (state.samples[0].at < info.uptime_secs - GRAPH_SECONDS) state.samples.shift();
}

function renderTopics(topics) {
  const body = $('topics');
  const list = $('topic-list');
  body.replaceChildren();
  list.replaceChildren();
  const sorted = [...topics].sort((a, b) => a.topic.localeCompare(b.topic));
  for (const { topic, subscribers } of sorted) {
    const row = document.createElement('tr');
    row.dataset.topic = topic;
    row.title = 'watch ' + topic;
    cell(row, topic);
    cell(row, String(subscribers));
    body.appendChild(row);
    const option = document.createElement('option');
    option.value = topic;
    list.appendChild(option);
  }
  if (sorted.length === 0) {
    const row = document.createElement('tr');
    cell(row, 'no topics');
    cell(row, '');
    body.appendChild(row);
  }
}

// ---------------------------------------------------------------- the graph

function niceCeiling(x) {
  const power = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) if (m * power >= x) return m * power;
  return 10 * power;
}

function drawGraph() {
  const canvas = $('rate-graph');
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * ratio)) canvas.width = Math.round(w * ratio);
  if (canvas.height !== Math.round(h * ratio)) canvas.height = Math.round(h * ratio);
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);

  const css = getComputedStyle(document.documentElement);
  const pad = { left: 44, right: 8, top: 8, bottom: 18 };
  const plotW = w - pad.left - pad.right;
  const plotH = h - pad.top - pad.bottom;
  const samples = state.samples;
  const now = samples.length ? samples[samples.length - 1].at : 0;
  const top = niceCeiling(Math.max(1, ...samples.map((s) => Math.max(s.rx, s.tx))));
  const x = (at) => pad.left + plotW * (1 - (now - at) / GRAPH_SECONDS);
  const y = (v) => pad.top + plotH * (1 - v / top);

  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = css.getPropertyValue('--muted');
  ctx.strokeStyle = css.getPropertyValue('--line');
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    ctx.beginPath();
    ctx.moveTo(pad.left, Math.round(y(v)) + 0.5);
    ctx.lineTo(w - pad.right, Math.round(y(v)) + 0.5);
    ctx.stroke();
    ctx.fillText(String(Number(v.toPrecision(3))), pad.left - 4, y(v));
  }
  ctx.textBaseline = 'top';
  for (const ago of [60, 30, 0]) {
    ctx.textAlign = ago === 60 ? 'left' : ago === 0 ? 'right' : 'center';
    ctx.fillText(ago ? `-${ago} s` : 'now', pad.left + plotW * (1 - ago / GRAPH_SECONDS), h - pad.bottom + 4);
  }

  for (const [key, color] of [['rx', '--rx'], ['tx', '--tx']]) {
    ctx.strokeStyle = css.getPropertyValue(color);
    ctx.lineWidth = 2;
    ctx.beginPath();
    samples.forEach((s, i) => (i ? ctx.lineTo(x(s.at), y(s[key])) : ctx.moveTo(x(s.at), y(s[key]))));
    ctx.stroke();
  }
}

// ---------------------------------------------------------------- presence

async function refreshPresence(topic) {
  const body = $('presence');
  try {
    const answer = await api('GET', '/api/presence?topic=' + encodeURIComponent(topic));
    if (topic !== state.topic) return;
    body.replaceChildren();
    const users = Object.entries(answer.users || {}).sort(([a], [b]) => a.localeCompare(b));
    for (const [user, entry] of users) {
      const row = document.createElement('tr');
      cell(row, user);
      cell(row, String(entry.connections));
      cell(row, JSON.stringify(entry.data));
      body.appendChild(row);
    }
    if (users.length === 0) {
      const row = document.createElement('tr');
      cell(row, 'nobody');
      cell(row, '');
      cell(row, '');
      body.appendChild(row);
    }
    $('presence-error').textContent = '';
  } catch (e) {
    if (topic !== state.topic) return;
    body.replaceChildren();
    $('presence-error').textContent = 'presence: ' + e.describe();
  }
}

// Chooses the topic whose presence is shown and whose messages the feed lists.
function watch(topic) {
  state.topic = topic;
  $('topic').value = topic;
  $('presence-topic').textContent = '— ' + topic;
  $('feed-topic').textContent = '— ' + topic;
  if (!$('pub-topic').value) $('pub-topic').value = topic;
  subscribe();
  refreshPresence(topic);
}

// ---------------------------------------------------------------- publish

async function publish(event) {
  event.preventDefault();
  const result = $('pub-result');
  const topic = $('pub-topic').value.trim();
  let data;
  try {
    data = JSON.parse($('pub-data').value);
  } catch (e) {
    result.className = 'error';
    result.textContent = 'data is not valid JSON: ' + e.message;
    return;
  }
  // Anything that parses is sent: the API itself rejects what it does not accept.
  try {
    const answer = await api('POST', '/api/publish', { topic, data });
    result.className = 'ok';
    result.textContent = `published to ${topic}: ${JSON.stringify(answer)}`;
  } catch (e) {
    if (e.status === 401) return logout('The API key was refused.');
    result.className = 'error';
    result.textContent = 'publish failed: ' + e.describe();
  }
}

// ---------------------------------------------------------------- the live feed (WebSocket)

function send(message) {
  if (feed.ws && feed.ws.readyState === WebSocket.OPEN) feed.ws.send(JSON.stringify(message));
}

async function connectFeed() {
  if (!state.running) return;
  const generation = ++feed.generation;
  setState('ws-state', 'feed: getting a token…');
  let token;
  try {
    token = (await api('POST', '/api/token', { sub: 'console' })).token;
  } catch (e) {
    if (e.status === 401) return logout('The API key was refused.');
    setState('ws-state', 'feed: no token — ' + e.describe(), 'bad');
    return scheduleReconnect();
  }
  if (generation !== feed.generation || !state.running) return;

  // A browser WebSocket cannot set headers: the token travels in the `access_token` cookie,
  // which the handshake (same origin) carries. It is dropped again once the socket is open.
  const secure = location.protocol === 'https:';
  document.cookie = `access_token=${token}; path=/; SameSite=Strict${secure ? '; Secure' : ''}`;
  const ws = new WebSocket(`${secure ? 'wss' : 'ws'}://${location.host}/wse`);
  ws.binaryType = 'arraybuffer';
  feed.ws = ws;
  setState('ws-state', 'feed: connecting…');

  ws.addEventListener('open', () => {
    if (generation !== feed.generation) return;
    document.cookie = 'access_token=; path=/; max-age=0';
    setState('ws-state', 'feed: open, waiting for server_ready');
    feed.pingTimer = setInterval(() => send({ c: 'WSE', t: 'ping', p: { timestamp: Date.now() }, v: 1 }), CLIENT_PING_MS);
  });
  ws.addEventListener('message', (event) => {
    if (generation !== feed.generation) return;
    feed.queue = feed.queue.then(() => onFrame(event.data)).catch((e) => addLine('system', 'frame error: ' + e));
  });
  ws.addEventListener('close', (event) => {
    clearInterval(feed.pingTimer);
    if (generation !== feed.generation) return;
    feed.ws = null;
    feed.ready = false;
    feed.subscribed = null;
    const why = `closed ${event.code}${event.reason ? ' ' + event.reason : ''}`;
    addLine('system', why);
    setState('ws-state', 'feed: ' + why, 'bad');
    scheduleReconnect();
  });
}

function scheduleReconnect() {
  if (!state.running || feed.retryTimer) return;
  const ms = feed.retryMs;
  feed.retryMs = Math.min(ms * 2, RECONNECT_MAX_MS);
  const el = $('ws-state');
  el.textContent += ` — retrying in ${ms / 1000} s`;
  feed.retryTimer = setTimeout(() => {
    feed.retryTimer = null;
    connectFeed();
  }, ms);
}

function stopFeed() {
  feed.generation++;
  clearInterval(feed.pingTimer);
  clearTimeout(feed.retryTimer);
  feed.retryTimer = null;
  if (feed.ws) feed.ws.close(1000, 'console closed');
  feed.ws = null;
  feed.ready = false;
  feed.subscribed = null;
  setState('ws-state', 'feed: not connected');
}

// Subscribes the socket to the watched topic (after server_ready), leaving the previous one.
function subscribe() {
  const topic = state.topic;
  if (!feed.ready || !topic || feed.subscribed === topic) return;
  if (feed.subscribed) {
    send({ t: 'subscription_update', p: { action: 'unsubscribe', topics: [feed.subscribed] } });
  }
  send({ t: 'subscription_update', p: { action: 'subscribe', topics: [topic] } });
  feed.subscribed = topic;
  setState('ws-state', `feed: subscribing to ${topic}…`);
}

async function onFrame(data) {
  if (typeof data === 'string') return onText(data);
  // Binary frames are `send_event` output (the subscription ack among it): JSON, or `C:` + zlib.
  const bytes = new Uint8Array(data);
  if (bytes[0] === 0x43 && bytes[1] === 0x3a) {
    const text = await inflate(bytes.subarray(2));
    if (text === null) return addLine('binary', `compressed (${bytes.length} bytes)`);
    return onText(text);
  }
  if (bytes[0] === 0x4d && bytes[1] === 0x3a) return addLine('binary', `msgpack (${bytes.length} bytes)`);
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return addLine('binary', `binary (${bytes.length} bytes)`);
  }
  return onText(text);
}

// zlib (RFC 1950) is what DecompressionStream calls 'deflate'. Null when unavailable or corrupt.
async function inflate(bytes) {
  if (typeof DecompressionStream !== 'function') return null;
  try {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
    return await new Response(stream).text();
  } catch {
    return null;
  }
}

function onText(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    return addLine('text', text);
  }
  const p = message.p || {};
  switch (message.t) {
    case 'ping':
    case 'PING':
      return send({ t: 'pong' }); // the server's heartbeat
    case 'pong':
    case 'PONG':
      return undefined; // the answer to ours
    case 'server_ready': {
      const id = (p.details && p.details.connection_id) || p.connection_id || '?';
      feed.ready = true;
      feed.retryMs = RECONNECT_MIN_MS;
      addLine('system', 'server_ready, connection ' + id);
      setState('ws-state', 'feed: connected', 'ok');
      return subscribe();
    }
    case 'subscription_update': {
      const ok = p.success_topics || [];
      const failed = p.failed_topics || [];
      addLine('system', `subscription_update: ok ${JSON.stringify(ok)}, failed ${JSON.stringify(failed)}`);
      if (ok.includes(state.topic)) setState('ws-state', `feed: watching ${state.topic}`, 'ok');
      else if (failed.length) setState('ws-state', `feed: subscription refused for ${failed.join(', ')}`, 'bad');
      return undefined;
    }
    default:
      return addLine(message.tp || 'text', text);
  }
}

function addLine(kind, text) {
  const list = $('feed');
  const item = document.createElement('li');
  if (kind === 'system') item.className = 'system';
  const time = document.createElement('span');
  time.className = 'time';
  time.textContent = new Date().toLocaleTimeString();
  const label = document.createElement('span');
  label.className = 'kind';
  label.textContent = kind;
  const body = text.length > FEED_MAX_CHARS ? text.slice(0, FEED_MAX_CHARS) + '…' : text;
  item.append(time, label, body);
  list.prepend(item);
  while (list.childElementCount > FEED_MAX_LINES) list.lastElementChild.remove();
}

// ---------------------------------------------------------------- login and start

function start() {
  state.running = true;
  $('login').hidden = true;
  $('main').hidden = false;
  $('logout').hidden = false;
  poll();
  connectFeed();
}

function logout(message) {
  state.running = false;
  clearTimeout(state.pollTimer);
  stopFeed();
  sessionStorage.removeItem(KEY_STORAGE);
  state.previous = null;
  state.samples = [];
  setState('api-state', 'API: not connected');
  $('main').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('api-key').focus();
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORAGE, $('api-key').value);
  $('api-key').value = '';
  $('login-error').textContent = '';
  start();
});
$('logout').addEventListener('click', () => logout(''));
$('watch').addEventListener('submit', (event) => {
  event.preventDefault();
  const topic = $('topic').value.trim();
  if (topic) watch(topic);
});
$('topics').addEventListener('click', (event) => {
  const row = event.target.closest('tr');
  if (row && row.dataset.topic) watch(row.dataset.topic);
});
$('publish').addEventListener('submit', publish);

if (sessionStorage.getItem(KEY_STORAGE)) start();
else logout('');
