// The Chat / Tools tabs (ARIA tabs: arrow keys, Home and End move between them).
import { $, el } from './page.js';

export function setupTabs() {
  for (const tab of el.tabs) {
    tab.addEventListener('click', () => selectTab(tab));
    tab.addEventListener('keydown', onTabKey);
  }
}

function selectTab(tab) {
  for (const t of el.tabs) {
    const on = t === tab;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute('aria-controls')).hidden = !on;
  }
}

function onTabKey(e) {
  const i = el.tabs.indexOf(e.currentTarget);
  const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: el.tabs.length - 1 }[e.key];
  if (next === undefined) return;
  e.preventDefault();
  const tab = el.tabs[(next + el.tabs.length) % el.tabs.length];
  selectTab(tab);
  tab.focus();
}
