#!/usr/bin/python3
"""Prints the session's Firefox enterprise policies (policies.json) from the HS_* switches.

The entrypoint has validated the switches ("1"/"0"); anything but "1" counts as off.
"""
import json
import os
import sys

HOME = os.environ.get("HOME", "/tmp/hs/home")
# Where Firefox saves when downloads are off: hs-downloads.py --refuse empties it at once and
# tells the user (the download fails in Firefox's panel; the notice says why).
REFUSED_DOWNLOADS_DIR = os.path.join(HOME, "Refused-Downloads")
# HackStream's notice page, opened from the session even where file:// is blocked.
NOTICE_URL = "file:///usr/share/hackstream/download-refused.html*"
# Firefox's downloads, apart from ~/Downloads (where files the client sends land), so that
# hs-downloads sends the client only what came from the web.
WEB_DOWNLOADS_DIR = os.path.join(HOME, "Web-Downloads")


def on(name):
    return os.environ.get(name) == "1"


def policies():
    downloads = on("HS_DOWNLOADS")
    file_urls = on("HS_FILE_URLS")
    p = {
        "DisableAppUpdate": True,
        "AppAutoUpdate": False,
        "DisableSystemAddonUpdate": True,
        "DisableTelemetry": True,
        "DisableFirefoxStudies": True,
        "DisableFeedbackCommands": True,
        "DisableProfileImport": True,
        "DisableProfileRefresh": True,
        "DisableSetDesktopBackground": True,
        "DisableDefaultBrowserAgent": True,
        "DontCheckDefaultBrowser": True,
        "OverrideFirstRunPage": "",
        "OverridePostUpdatePage": "",
        "SkipTermsOfUse": True,
        "NoDefaultBookmarks": True,
        "OfferToSaveLogins": False,
        "PasswordManagerEnabled": False,
        "CaptivePortal": False,
        "BlockAboutProfiles": True,
        "UserMessaging": {
            "ExtensionRecommendations": False,
            "FeatureRecommendations": False,
            "UrlbarInterventions": False,
            "SkipOnboarding": True,
            "MoreFromMozilla": False,
            "FirefoxLabs": False,
            "Locked": True,
        },
        "FirefoxHome": {
            "SponsoredTopSites": False,
            "SponsoredStories": False,
            "Stories": False,
            "Locked": True,
        },
        "Preferences": {
            # The data-reporting notification bar and first-run telemetry nags.
            "datareporting.policy.dataSubmissionPolicyBypassNotification": {"Value": True, "Status": "locked"},
            "datareporting.policy.dataSubmissionEnabled": {"Value": False, "Status": "locked"},
            "browser.aboutwelcome.enabled": {"Value": False, "Status": "locked"},
            "browser.startup.homepage_override.mstone": {"Value": "ignore", "Status": "locked"},
        },
        "PrintingEnabled": on("HS_PRINTING"),
        # The file picker only shows the container's own files; it is useful for what xpra's
        # file transfer dropped into ~/Downloads, or with file:// access.
        "AllowFileSelectionDialogs": on("HS_FILE_TRANSFER") or file_urls,
        "PromptForDownloadLocation": False,
        "StartDownloadsInTempDirectory": False,
        "DownloadDirectory": WEB_DOWNLOADS_DIR if downloads else REFUSED_DOWNLOADS_DIR,
    }
    if not file_urls:
        # Also covers view-source:file:// (the filter checks the inner URL).
        p["WebsiteFilter"] = {"Block": ["file:///*"], "Exceptions": [NOTICE_URL]}
    return {"policies": p}


if __name__ == "__main__":
    os.makedirs(WEB_DOWNLOADS_DIR if on("HS_DOWNLOADS") else REFUSED_DOWNLOADS_DIR, mode=0o700, exist_ok=True)
    json.dump(policies(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
