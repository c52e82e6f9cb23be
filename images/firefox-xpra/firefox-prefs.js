// HackStream: Firefox ESR defaults for a streamed, ephemeral session (read from /etc/firefox-esr).
// Per-session switches live in the enterprise policies the entrypoint writes at start;
// these are the static defaults the policy engine cannot set.
pref("toolkit.telemetry.reportingpolicy.firstRun", false);
pref("toolkit.telemetry.enabled", false);
pref("browser.shell.checkDefaultBrowser", false);
// The profile is thrown away with the container: no crash-restore page, no session writes.
pref("browser.sessionstore.resume_from_crash", false);
pref("browser.sessionstore.max_resumed_crashes", 0);
pref("browser.tabs.warnOnClose", false);
// The profile lives in a tmpfs, i.e. in RAM: keep the HTTP cache in memory and bounded.
pref("browser.cache.disk.enable", false);
pref("browser.cache.memory.capacity", 65536);
// Memory per session: no pre-launched content process, no pre-rendered new-tab page, no
// cached page viewers for back/forward (each costs tens of MB; a new tab opens ~0.1 s slower).
pref("dom.ipc.processPrelaunch.enabled", false);
pref("browser.newtab.preload", false);
pref("browser.sessionhistory.max_total_viewers", 0);
// No background network chatter from a server-side browser.
pref("app.normandy.enabled", false);
pref("extensions.getAddons.cache.enabled", false);
pref("browser.region.network.url", "");
pref("browser.region.update.enabled", false);
