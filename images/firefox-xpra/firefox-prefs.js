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
pref("browser.cache.memory.capacity", 16384);
// Decoded images: at most 64 MB (the default scales with the machine's RAM, i.e. the host's).
pref("image.mem.surfacecache.max_size_kb", 65536);
// places.sqlite and favicons.sqlite grow in 10 MB steps by default, preallocated in the tmpfs.
pref("places.database.growthIncrementKiB", 0);
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
pref("network.predictor.enabled", false);
pref("network.prefetch-next", false);
pref("network.dns.disablePrefetch", true);
pref("browser.places.speculativeConnect.enabled", false);
pref("extensions.pocket.enabled", false);
pref("browser.discovery.enabled", false);
pref("browser.urlbar.quicksuggest.enabled", false);
pref("browser.newtabpage.activity-stream.feeds.section.topstories", false);
pref("browser.newtabpage.activity-stream.feeds.system.topstories", false);
pref("browser.newtabpage.activity-stream.feeds.discoverystreamfeed", false);
pref("browser.newtabpage.activity-stream.feeds.weatherfeed", false);
pref("browser.newtabpage.activity-stream.showSponsored", false);
pref("browser.newtabpage.activity-stream.showSponsoredTopSites", false);
pref("browser.newtabpage.activity-stream.telemetry", false);
pref("toolkit.telemetry.unified", false);
pref("toolkit.telemetry.archive.enabled", false);
pref("datareporting.healthreport.uploadEnabled", false);
pref("app.shield.optoutstudies.enabled", false);
pref("media.gmp-manager.updateEnabled", false);
// No assistive technology runs in the container (xpra forwards pixels, not an a11y tree).
pref("accessibility.force_disabled", 1);
// The JS heap may grow less between collections (the defaults suit a desktop with GBs free).
pref("javascript.options.mem.gc_high_frequency_large_heap_growth", 120);
pref("javascript.options.mem.gc_low_frequency_heap_growth", 120);
// Kept on purpose: Fission (site isolation), one process per site, the separate privileged
// about: process, the extension, socket, RDD and utility processes. On the blank page
// dom.ipc.processCount=1 with fission.autostart=false saved nothing (the same two content
// processes run: the extension process and the blank tab's); each isolation process is a
// sandbox boundary. Safe Browsing stays on as well.
