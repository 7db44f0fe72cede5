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
    const passwords = service.storagePasswords(NAMESPACE);
    const secret = JSON.stringify(settings);
    try {
      await passwords.fetch();
      const existing = passwords.item(REALM + ":" + USERNAME + ":", NAMESPACE);
      if (existing) {
        await existing.update({ password: secret });
      } else {
        await passwords.create({ name: USERNAME, realm: REALM, password: secret });
      }
      const apps = service.configurations(NAMESPACE);
      await apps.fetch();
      const appConf = apps.item("app", NAMESPACE);
      await appConf.fetch();
      const install = appConf.item("install", NAMESPACE);
      await install.update({ is_configured: "true" });
      await service.apps().item(APP).reload();
      $("#logwarden_token").val("");
      say("Saved. Try: index=... | anomalyscore", false);
    } catch (err) {
      say("Could not save the settings: " + ((err && err.data && JSON.stringify(err.data)) || err), true);
    }
  }

  $("#logwarden_save").on("click", function (e) {
    e.preventDefault();
    save();
  });
});
