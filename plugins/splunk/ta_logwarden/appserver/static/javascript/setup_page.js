"use strict";
// LogWarden setup page: stores the scoring server's URL, CA bundle and bearer token as ONE credential in
// Splunk's credential store (storage/passwords, realm "ta_logwarden", user "scoring_server"; the password is
// the JSON object {"url", "token", "ca_pem", "timeout_s"}), then marks the app configured. The search commands
// read the same credential (bin/logwarden_splunk/credentials.py). Nothing is written to a .conf file.

const APP = "ta_logwarden";
const REALM = "ta_logwarden";
const USERNAME = "scoring_server";
const NAMESPACE = { owner: "nobody", app: APP, sharing: "app" };

require(["jquery", "splunkjs/splunk"], function ($, splunkjs) {
  function say(text, isError) {
    $("#logwarden_status").text(text).css("color", isError ? "#DC4E41" : "#53A051");
  }

  function validate(settings) {
    if (!/^https?:\/\/[^/\s]+/.test(settings.url)) {
      return "The server URL must start with http:// or https:// and name a host.";
    }
    if (settings.ca_pem && settings.ca_pem.indexOf("-----BEGIN CERTIFICATE-----") < 0) {
      return "The CA bundle must be PEM text (-----BEGIN CERTIFICATE----- ...).";
    }
    if (!(settings.timeout_s > 0 && settings.timeout_s <= 300)) {
      return "The timeout must be a number of seconds between 0 and 300.";
    }
    return "";
  }

  async function save() {
    const settings = {
      url: $("#logwarden_url").val().trim(),
      token: $("#logwarden_token").val(),
      ca_pem: $("#logwarden_ca").val().trim(),
      timeout_s: parseFloat($("#logwarden_timeout").val()),
    };
    const problem = validate(settings);
    if (problem) {
      say(problem, true);
      return;
    }
    const service = new splunkjs.Service(new splunkjs.SplunkWebHttp(), NAMESPACE);
    const secret = JSON.stringify(settings);
    try {
      const passwords = service.storagePasswords(NAMESPACE);
      await passwords.fetch();
      const existing = passwords.item(REALM + ":" + USERNAME + ":");
      // create/update take a callback in the SDK Splunk Web ships (they are not awaitable)
      await new Promise(function (resolve, reject) {
        const done = function (err) {
          if (err) reject(err);
          else resolve();
        };
        if (existing) existing.update({ password: secret }, done);
        else passwords.create({ name: USERNAME, realm: REALM, password: secret }, done);
      });
      const configs = service.configurations(NAMESPACE);
      await configs.fetch();
      const appConf = configs.item("app");
      await appConf.fetch();
      const install = appConf.item("install");
      await install.fetch();
      await install.update({ is_configured: "true" });
      const apps = service.apps();
      await apps.fetch();
      const app = apps.item(APP);
      await app.fetch();
      await app.reload(); // the app registers is_configured only after a reload
      $("#logwarden_token").val("");
      say("Saved. Try: index=... | anomalyscore", false);
    } catch (err) {
      const detail = (err && (err.responseText || (err.data && JSON.stringify(err.data)))) || String(err);
      say("Could not save the settings: " + detail, true);
    }
  }

  $("#logwarden_save").on("click", function (e) {
    e.preventDefault();
    save();
  });
});
