// The chat panel: the conversation, streaming replies, stop, regenerate, clear, and the speed and context figures.
import { el, state, updateControls, stopGenerating, isAbort, describeError } from './page.js';
import { settings } from './settings.js';

export function setupChat() {
  el.chatForm.addEventListener('submit', (e) => {
    e.preventDefault();
    sendChat();
  });
  el.chatInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey && !e.isComposing) {
      e.preventDefault();
      sendChat();
    } else if (e.key === 'Escape' && state.generating) {
      e.preventDefault();
      stopGenerating();
    }
  });
  el.chatInput.addEventListener('input', updateControls);
  el.stopBtn.addEventListener('click', stopGenerating);
  el.regenBtn.addEventListener('click', regenerate);
  el.clearBtn.addEventListener('click', clearChat);
}

function sendChat() {
  const text = el.chatInput.value.trim();
  if (!text || !state.lm || state.generating) return;
  el.chatInput.value = '';
  state.history.push({ role: 'user', content: text, node: addMessage('user', text) });
  updateControls();
  generateReply();
}

/** Appends a message bubble; returns it. The text goes into a text node, so it can never become markup. */
function addMessage(role, text) {
  el.chatEmpty.hidden = true;
  const msg = document.createElement('article');
  msg.className = `msg ${role}`;
  const who = document.createElement('span');
  who.className = 'sr-only';
  who.textContent = role === 'user' ? 'You said:' : role === 'assistant' ? 'Model replied:' : 'Notice:';
  const body = document.createElement('div');
  body.className = 'text';
  body.append(document.createTextNode(text));
  msg.append(who, body);
  el.messages.append(msg);
  scrollToEnd(true);
  return msg;
}

function scrollToEnd(force) {
  const box = el.messages;
  const nearEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 96;
  if (force || nearEnd) box.scrollTop = box.scrollHeight;
}

function addMeta(node, text, kind = '') {
  const meta = document.createElement('p');
  meta.className = `meta ${kind}`.trim();
  meta.textContent = text;
  node.append(meta);
}

async function generateReply() {
  const s = settings();
  const messages = [];
  if (s.system) messages.push({ role: 'system', content: s.system });
  for (const m of state.history) messages.push({ role: m.role, content: m.content });

  const node = addMessage('assistant', '');
  node.classList.add('streaming');
  const textNode = node.querySelector('.text').firstChild;
  const ctl = new AbortController();
  state.generating = { ctl, kind: 'chat' };
  updateControls();

  let pieces = 0;
  let firstAt = 0;
  let outcome = 'done';
  let error = null;
  el.statSpeed.textContent = 'reading prompt…';
  try {
    const stream = state.lm.chatStream(messages, {
      temperature: s.temperature, topP: s.topP, maxTokens: s.maxTokens, signal: ctl.signal,
    });
    for await (const piece of stream) {
      if (!piece) continue;
      const now = performance.now();
      if (!firstAt) firstAt = now;
      textNode.appendData(piece);
      pieces++;
      // Live estimate (a streamed piece is about one token); replaced by the engine's own count when done.
      if (now - firstAt > 250) el.statSpeed.textContent = `≈${((1000 * (pieces - 1)) / (now - firstAt)).toFixed(1)} tok/s`;
      scrollToEnd(false);
    }
  } catch (err) {
    if (isAbort(err)) outcome = 'stopped';
    else {
      outcome = 'error';
      error = err;
      console.error(err);
    }
  }
  if (ctl.signal.aborted && outcome === 'done') outcome = 'stopped';

  node.classList.remove('streaming');
  const text = textNode.data;
  if (text.trim()) {
    state.history.push({ role: 'assistant', content: text, node });
  } else if (outcome !== 'done') {
    node.remove();
  } else {
    textNode.data = '(empty reply)';
    node.classList.add('muted');
    state.history.push({ role: 'assistant', content: '', node });
  }
  const stats = showStats();
  if (outcome === 'stopped' && text.trim()) addMeta(node, 'Stopped.', 'stopped');
  else if (outcome === 'stopped') addMessage('notice', 'Stopped before the model wrote anything.');
  else if (outcome === 'error') addMessage('notice', describeError(error)).classList.add('error');
  else if (stats) addMeta(node, replyMeta(stats));

  const hadFocus = document.activeElement === el.stopBtn;
  state.generating = null;
  updateControls();
  if (hadFocus) el.chatInput.focus();
}

const FINISH = { length: ' · reached max tokens', context: ' · context full' };
export function replyMeta(st) {
  return `${st.generatedTokens} tokens · ${st.decodeTokensPerSecond.toFixed(1)} tok/s${FINISH[st.finishReason] ?? ''}`;
}

/** Shows the engine's own numbers for the last chat call; returns them when they are usable. */
function showStats() {
  const st = state.lm?.lastStats;
  if (!st || !Number.isFinite(st.decodeTokensPerSecond)) {
    el.statSpeed.textContent = '— tok/s';
    return null;
  }
  el.statSpeed.textContent = `${st.decodeTokensPerSecond.toFixed(1)} tok/s`;
  el.statSpeed.title = `prompt: ${st.promptTokens} tokens at ${st.prefillTokensPerSecond?.toFixed?.(1) ?? '?'} tok/s`;
  updateContextStat((st.promptTokens || 0) + (st.generatedTokens || 0));
  return st;
}

export function updateContextStat(used) {
  const size = state.lm?.info?.contextSize;
  if (used === null || !size) {
    el.statContext.textContent = 'context —';
    return;
  }
  el.statContext.textContent = `context ${used.toLocaleString()} / ${size.toLocaleString()} tokens`;
  el.statContext.classList.toggle('warn', used / size > 0.85);
}

function regenerate() {
  if (!state.lm || state.generating) return;
  while (state.history.length && state.history[state.history.length - 1].role === 'assistant') {
    state.history.pop().node.remove();
  }
  // Notices (stopped, errors) after the last user message belong to the reply being replaced.
  const lastUser = state.history[state.history.length - 1]?.node;
  while (lastUser?.nextElementSibling) lastUser.nextElementSibling.remove();
  if (!state.history.length) return;
  generateReply();
}

function clearChat() {
  if (state.generating) return;
  state.history = [];
  for (const node of [...el.messages.children]) if (node !== el.chatEmpty) node.remove();
  el.chatEmpty.hidden = false;
  el.statSpeed.textContent = '— tok/s';
  updateContextStat(state.lm ? 0 : null);
  updateControls();
  el.chatInput.focus();
}
