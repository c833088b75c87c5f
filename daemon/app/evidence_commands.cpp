// `glasswatch evidence init|verify|export`: the sealed chain as an auditor meets it
// (docs/evidence.md). verify and export only read; init starts the chain and shows the
// verification key once, on the operator's terminal, never in a log.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "app/cli_args.hpp"
#include "app/commands.hpp"
#include "app/config_file.hpp"
#include "core/base/json_text.hpp"
#include "core/base/time.hpp"
#include "core/evidence/chain.hpp"
#include "core/evidence/records.hpp"
#include "io/store/evidence_key_file.hpp"
#include "io/store/runtime.hpp"
#include "io/store/store.hpp"

namespace glasswatch::app {

namespace ev = core::evidence;
using json = nlohmann::json;

namespace {

constexpr const char* bundle_format = "glasswatch-evidence-bundle/1";

bool read_text(const std::string& path, std::string& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::ostringstream ss;
    ss << in.rdbuf();
    out = ss.str();
    return true;
}

// --key gwv1-... or --key-file PATH (a file from `evidence init` or the one the daemon wrote).
bool load_verification_key(cli_args& cli, const std::string& key_text, const std::string& key_file,
                           std::optional<ev::sealing_key>& out) {
    std::string text = key_text;
    if (!key_file.empty() && !read_text(key_file, text)) {
        cli.fail("--key-file: cannot read " + key_file);
        return false;
    }
    if (text.empty()) return true;
    // A key file carries comment lines: the key is the line that starts with gwv1-.
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);)
        if (auto k = ev::parse_verification_key(line)) {
            out = k;
            return true;
        }
    cli.fail(std::string(key_file.empty() ? "--key" : "--key-file") +
             ": not a glasswatch verification key (expected gwv1- and 64 hex digits)");
    return false;
}

bool load_anchors(cli_args& cli, const std::vector<std::string>& given, const std::string& file,
                  std::vector<ev::anchor>& out) {
    for (const auto& a : given) {
        auto parsed = ev::parse_anchor(a);
        if (!parsed) {
            cli.fail("--anchor: expected SEQ:HASH (a sequence number and 16 hex digits), got '" +
                     core::sanitize_line(a, 60) + "'");
            return false;
        }
        out.push_back(*parsed);
    }
    if (!file.empty()) {
        std::string text;
        if (!read_text(file, text)) {
            cli.fail("--anchors: cannot read " + file);
            return false;
        }
        const auto found = ev::find_anchors(text);
        if (found.empty()) {
            cli.fail("--anchors: no SEQ:HASH anchor in " + file);
            return false;
        }
        out.insert(out.end(), found.begin(), found.end());
    }
    return true;
}

json entry_json(const ev::entry& e) {
    return {{"seq", e.seq},
            {"epoch", e.epoch},
            {"kind", e.kind},
            {"recorded_at", e.recorded_at},
            {"ref", e.ref},
            {"body", e.body},
            {"prev_hash", e.prev_hash},
            {"hash", e.hash},
            {"mac", e.mac}};
}

std::optional<ev::entry> entry_from(const json& j) {
    try {
        ev::entry e;
        e.seq = j.at("seq").get<std::int64_t>();
        e.epoch = j.at("epoch").get<std::int64_t>();
        e.kind = j.at("kind").get<std::string>();
        e.recorded_at = j.at("recorded_at").get<std::int64_t>();
        e.ref = j.at("ref").get<std::string>();
        e.body = j.at("body").get<std::string>();
        e.prev_hash = j.at("prev_hash").get<std::string>();
        e.hash = j.at("hash").get<std::string>();
        e.mac = j.at("mac").get<std::string>();
        return e;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::string trailer_data(const std::string& head_hash, std::int64_t key_epoch,
                         std::int64_t exported_at) {
    return "glasswatch evidence bundle trailer," + head_hash + "," + std::to_string(key_epoch) +
           "," + std::to_string(exported_at);
}

void print_report(const ev::verify_report& r, const std::vector<ev::entry>& entries,
                  const std::string& key_id) {
    if (!r.ok) {
        std::printf("evidence BROKEN at entry %lld: %s\n", static_cast<long long>(r.first_bad_seq),
                    r.problem.c_str());
        return;
    }
    std::int64_t alerts = 0, deliveries = 0;
    for (const auto& e : entries) {
        alerts += e.kind == ev::kinds::alert;
        deliveries += e.kind == ev::kinds::delivery;
    }
    std::printf(
        "evidence intact: %lld entries (%lld alert(s), %lld delivery record(s)), sealed through "
        "entry %lld (%lld epoch(s) closed), head %s\n",
        static_cast<long long>(r.entries), static_cast<long long>(alerts),
        static_cast<long long>(deliveries), static_cast<long long>(r.sealed_through_seq),
        static_cast<long long>(r.closed_epochs), ev::anchor_text(r.last_seq, r.last_hash).c_str());
    if (r.seals_checked)
        std::printf("seals checked with verification key %s\n", key_id.c_str());
    else
        std::printf(
            "seals NOT checked: give --key-file with the verification key (without it a rewrite "
            "that recomputes every hash cannot be seen)\n");
    if (r.anchors_checked > 0)
        std::printf("%lld anchor(s) checked: the chain extends each\n",
                    static_cast<long long>(r.anchors_checked));
}

int verify_bundle(const std::string& path, const ev::verify_input& given) {
    std::string text;
    if (!read_text(path, text)) {
        std::fprintf(stderr, "evidence verify: cannot read %s\n", path.c_str());
        return exit_failure;
    }
    std::vector<ev::entry> entries;
    json header, trailer;
    std::istringstream lines(text);
    std::int64_t line_no = 0;
    for (std::string line; std::getline(lines, line);) {
        ++line_no;
        if (line.empty()) continue;
        json j = json::parse(line, nullptr, false);
        if (!j.is_object()) {
            std::printf("evidence BROKEN: %s line %lld is not JSON\n", path.c_str(),
                        static_cast<long long>(line_no));
            return exit_failure;
        }
        if (j.contains("bundle")) {
            header = j;
        } else if (j.contains("trailer")) {
            trailer = j;
        } else if (auto e = entry_from(j)) {
            entries.push_back(*e);
        } else {
            std::printf("evidence BROKEN: %s line %lld is not an entry\n", path.c_str(),
                        static_cast<long long>(line_no));
            return exit_failure;
        }
    }
    if (header.value("bundle", std::string()) != bundle_format) {
        std::printf("evidence BROKEN: %s is not a glasswatch evidence bundle\n", path.c_str());
        return exit_failure;
    }
    ev::verify_input in = given;
    in.from_genesis = true;
    // The trailer: the exporter's sealing-key epoch, sealed with that epoch's key. It proves the
    // chain reached that epoch when exported, so closed epochs cut from the bundle show.
    if (!trailer.is_object()) {
        std::printf("evidence BROKEN: %s has no trailer (cut short)\n", path.c_str());
        return exit_failure;
    }
    const std::int64_t key_epoch = trailer.value("key_epoch", -1LL);
    const std::string head_hash = trailer.value("head_hash", std::string());
    const std::int64_t exported_at = trailer.value("exported_at", 0LL);
    if (in.k0 && key_epoch >= 0) {
        const std::string expect = ev::seal(ev::key_at(*in.k0, key_epoch), key_epoch,
                                            trailer_data(head_hash, key_epoch, exported_at));
        if (expect != trailer.value("mac", std::string())) {
            std::printf(
                "evidence BROKEN: the bundle's trailer does not verify (edited, or not "
                "sealed for this verification key)\n");
            return exit_failure;
        }
    }
    if (!entries.empty() && entries.back().hash != head_hash) {
        std::printf(
            "evidence BROKEN at entry %lld: the bundle ends before the head its trailer "
            "names (entries cut from its end)\n",
            static_cast<long long>(entries.back().seq + 1));
        return exit_failure;
    }
    if (key_epoch >= 0) in.key_epoch = key_epoch;
    const ev::verify_report r = ev::verify(entries, in);
    print_report(r, entries, header.value("key_id", std::string()));
    return r.ok ? exit_ok : exit_failure;
}

int write_bundle(io::store& db, const std::string& state_dir, const std::string& path) {
    std::string why;
    const auto key = io::read_sealing_key(io::sealing_key_path(state_dir), why);
    if (!key) {
        std::fprintf(stderr, "evidence export: %s\n", why.c_str());
        return exit_failure;
    }
    const auto entries = db.evidence_entries(1);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) {
        std::fprintf(stderr, "evidence export: cannot write %s\n", path.c_str());
        return exit_failure;
    }
    const std::int64_t exported_at = io::wall_now();
    out << json{{"bundle", bundle_format},
                {"key_id", key->key_id},
                {"exported_at", core::format_iso8601(exported_at)},
                {"entries", entries.size()}}
               .dump()
        << "\n";
    for (const auto& e : entries)
        out << entry_json(e).dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    const std::string head_hash = entries.empty() ? ev::genesis_hash : entries.back().hash;
    out << json{{"trailer", true},
                {"head_hash", head_hash},
                {"key_epoch", key->epoch},
                {"exported_at", exported_at},
                {"mac",
                 ev::seal(key->key, key->epoch, trailer_data(head_hash, key->epoch, exported_at))}}
               .dump()
        << "\n";
    out.close();
    if (!out) {
        std::fprintf(stderr, "evidence export: cannot write %s\n", path.c_str());
        return exit_failure;
    }
    std::printf(
        "wrote %zu entries to %s (verify it anywhere: glasswatch evidence verify --bundle "
        "%s --key-file VERIFICATION_KEY_FILE)\n",
        entries.size(), path.c_str(), path.c_str());
    return exit_ok;
}

// The auditor's view: one line per alert (its record, the alert, what each sink did) and one per
// operator action, read from the sealed entries, never from the tables an intruder could edit.
int export_lines(io::store& db, core::micros since, const std::string& account) {
    const auto entries = db.evidence_entries(1);
    std::map<std::string, std::map<std::string, json>> deliveries;  // alert -> sink -> state
    for (const auto& e : entries) {
        if (e.kind != ev::kinds::delivery) continue;
        auto d = ev::parse_delivery(e.body);
        if (!d) continue;
        json& row = deliveries[d->alert_id][d->sink];
        row["sink"] = d->sink;
        row["state"] = std::string(ev::state_after(d->result));
        row["attempts"] = d->attempts;
        if (d->result == "accepted") row["acceptedAt"] = core::format_iso8601(e.recorded_at);
        if (d->result == "confirmed") {
            if (!row.contains("acceptedAt"))
                row["acceptedAt"] = core::format_iso8601(e.recorded_at);
            row["confirmedAt"] = core::format_iso8601(e.recorded_at);
        }
        if (!d->error.empty()) row["lastError"] = d->error;
    }
    for (const auto& e : entries) {
        if (e.recorded_at < since) continue;
        json line = {{"seq", e.seq},
                     {"recordedAt", core::format_iso8601(e.recorded_at)},
                     {"hash", e.hash},
                     {"prevHash", e.prev_hash}};
        if (e.kind == ev::kinds::operator_action) {
            if (!account.empty()) continue;
            line["kind"] = e.kind;
            line["action"] = json::parse(e.body, nullptr, false);
        } else if (e.kind == ev::kinds::alert) {
            const json body = json::parse(e.body, nullptr, false);
            if (!body.is_object()) continue;
            const json& a = body["alert"];
            if (!account.empty() && a.value("subject_id", std::string()) != account) continue;
            line["source"] = body.value("source", std::string());
            const std::string raw_text = body.value("raw", std::string());
            auto raw = json::parse(raw_text, nullptr, false);
            if (raw.is_discarded())
                line["rawText"] = raw_text;
            else
                line["raw"] = raw;
            auto detail = json::parse(a.value("detail", std::string()), nullptr, false);
            line["alert"] =
                detail.is_discarded() ? json(a.value("summary", std::string())) : detail;
            json ds = json::array();
            for (const auto& [sink, d] : deliveries[e.ref])
                ds.push_back(d);
            line["deliveries"] = std::move(ds);
        } else {
            continue;
        }
        std::puts(line.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
    }
    return exit_ok;
}

int init_chain(const core::config& cfg) {
    std::string why;
    if (auto existing = io::read_sealing_key(io::sealing_key_path(cfg.state_directory), why)) {
        std::fprintf(stderr,
                     "evidence init: the evidence chain of %s is already sealed for verification "
                     "key %s; its key was shown when it started (or written to %s)\n",
                     cfg.state_directory.c_str(), existing->key_id.c_str(),
                     io::verification_key_path(cfg.state_directory).c_str());
        return exit_failure;
    }
    auto db = io::store::open(cfg.state_directory, why);
    if (!db) {
        std::fprintf(stderr, "evidence init: %s\n", why.c_str());
        return exit_store;
    }
    const std::string vpath = io::verification_key_path(cfg.state_directory);
    std::string text;
    if (!read_text(vpath, text)) {
        std::fprintf(stderr, "evidence init: the chain started but %s cannot be read\n",
                     vpath.c_str());
        return exit_failure;
    }
    std::fputs(text.c_str(), stdout);
    std::printf(
        "\nKeep this verification key off this machine (a password manager, a sealed envelope, "
        "your auditors' records). It is shown once: it was not logged and is now deleted here.\n");
    std::fflush(stdout);
    if (::unlink(vpath.c_str()) != 0)
        std::fprintf(stderr, "evidence init: delete %s yourself\n", vpath.c_str());
    return exit_ok;
}

}  // namespace

int cmd_evidence(const std::vector<std::string>& args) {
    if (args.empty() || (args[0] != "verify" && args[0] != "export" && args[0] != "init")) {
        std::fprintf(stderr,
                     "evidence: use 'evidence init', 'evidence verify' or 'evidence export' "
                     "(glasswatch help evidence)\n");
        return exit_usage;
    }
    const std::string what = args[0];
    std::string path, who, account, key_text, key_file, anchors_file, bundle, one_anchor;
    std::vector<std::string> anchors_given;
    core::micros since = 0;
    cli_args cli("evidence", args, 1);
    while (cli.more()) {
        if (cli.value("--config", path)) continue;
        if (what == "export" && (cli.value("--account", who) || cli.time("--since", since) ||
                                 cli.value("--bundle", bundle)))
            continue;
        if (what == "verify") {
            if (cli.value("--key", key_text) || cli.value("--key-file", key_file) ||
                cli.value("--anchors", anchors_file) || cli.value("--bundle", bundle))
                continue;
            if (cli.value("--anchor", one_anchor)) {
                anchors_given.push_back(one_anchor);
                continue;
            }
        }
        cli.unexpected();
    }
    ev::verify_input in;
    if (what == "verify") {
        load_verification_key(cli, key_text, key_file, in.k0);
        load_anchors(cli, anchors_given, anchors_file, in.anchors);
        if (!bundle.empty() && !in.k0)
            cli.fail(
                "--bundle needs the verification key (--key-file or --key): a bundle's "
                "seals are what it proves");
    }
    if (cli.failed()) return cli.usage_error();
    if (what == "verify" && !bundle.empty()) return verify_bundle(bundle, in);

    if (path.empty()) path = default_config_path;
    auto cfg = load_config_file(path);
    if (!cfg) return exit_config;
    if (what == "init") return init_chain(*cfg);
    if (!who.empty()) {
        const core::watched_account* w = find_watched_account(*cfg, who);
        if (w == nullptr) {
            cli.fail("--account: '" + core::sanitize_line(who, 120) +
                     "' is not a watched account; give an object id, UPN or label of: " +
                     describe_watched_accounts(*cfg));
            return cli.usage_error();
        }
        account = w->object_id;
    }
    std::string err;
    auto db = io::store::open(cfg->state_directory, err, /*read_only=*/true);
    if (!db) {
        std::fprintf(stderr, "evidence: %s\n", err.c_str());
        return exit_store;
    }
    if (db->schema_version() < 4) {
        std::printf(
            "evidence: this state file (schema %d) predates the sealed chain; start "
            "glasswatch once to migrate it, then verify\n",
            db->schema_version());
        return exit_failure;
    }
    if (what == "verify") {
        const auto st = db->evidence();
        const ev::verify_report r = db->verify_evidence(in);
        print_report(r, db->evidence_entries(1), st ? st->key_id : std::string());
        if (in.k0 && st && ev::key_id(*in.k0) != st->key_id)
            std::printf("note: the verification key given (id %s) is not this chain's (id %s)\n",
                        ev::key_id(*in.k0).c_str(), st->key_id.c_str());
        return r.ok ? exit_ok : exit_failure;
    }
    if (!bundle.empty()) return write_bundle(*db, cfg->state_directory, bundle);
    return export_lines(*db, since, account);
}

}  // namespace glasswatch::app
