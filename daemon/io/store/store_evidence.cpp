// The sealed evidence chain in the store: entries appended inside the write transaction that made
// the fact they record, epochs closed by a seal entry, the key evolved after the commit
// (docs/evidence.md). Concurrency: every write transaction (the daemon's store thread, a CLI
// command) reads the chain's head and the key file under SQLite's write lock, so two processes
// never seal the same epoch; evolving is deterministic, so a key file one step behind a committed
// seal (a crash between the two) is mended by whichever writer comes next.
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "core/evidence/records.hpp"
#include "core/evidence/sealing_key.hpp"
#include "io/store/evidence_key_file.hpp"
#include "io/store/store.hpp"
#include "io/store/store_sql.hpp"

namespace glasswatch::io {

using namespace store_sql;
namespace ev = core::evidence;

namespace {

std::optional<ev::entry> read_entry(stmt& q) {
    ev::entry e;
    e.seq = q.i64(0);
    e.epoch = q.i64(1);
    e.kind = q.text(2);
    e.recorded_at = q.i64(3);
    e.ref = q.text(4);
    e.body = q.blob(5);
    e.prev_hash = q.text(6);
    e.hash = q.text(7);
    e.mac = q.text(8);
    return e;
}

constexpr const char* entry_columns = "seq,epoch,kind,recorded_at,ref,body,prev_hash,hash,mac";

std::string meta_value(sqlite3* db, const char* key) {
    stmt q(db, "SELECT value FROM meta WHERE key=?");
    q.bind(1, key);
    return q.step() == SQLITE_ROW ? q.text(0) : std::string();
}

// An alert as the alerts table holds it (every alert, routed or not).
std::optional<core::alert> alert_from_table(sqlite3* db, const std::string& id) {
    stmt q(db,
           "SELECT alert_id,rule,severity,tenant_id,event_id,event_time,observed_at,subject_id,"
           "subject_label,coalesce(drill_id,''),summary,sms,detail,rules FROM alerts WHERE "
           "alert_id=?");
    q.bind(1, id);
    if (q.step() != SQLITE_ROW) return std::nullopt;
    core::alert a;
    a.id = q.text(0);
    read_alert_columns(q, 1, a);
    return a;
}

}  // namespace

bool store::in_write(const std::function<bool()>& f) {
    if (txn_.open) return f();
    if (!begin_write()) return false;
    if (!f()) {
        abort_write();
        return false;
    }
    return end_write();
}

bool store::begin_write() {
    txn_ = write_txn{};
    if (!exec("BEGIN IMMEDIATE")) return false;
    txn_.open = true;
    return true;
}

void store::abort_write() {
    if (txn_.open) exec("ROLLBACK");
    txn_ = write_txn{};
}

bool store::end_write() {
    if (!exec("COMMIT")) {
        abort_write();
        return false;
    }
    const bool evolve = txn_.sealed;
    const write_txn done = txn_;
    txn_ = write_txn{};
    if (evolve) {
        // The seal is durable: the key moves on and the closed epoch's key is overwritten.
        sealing_key_file next{done.key_id, done.head.epoch + 1,
                              ev::evolve(done.key, done.head.epoch + 1)};
        std::string why;
        if (!write_sealing_key(sealing_key_path(state_dir_), next, why))
            spdlog::error("evidence: cannot evolve the sealing key ({}); the next write retries",
                          why);
    }
    return true;
}

// Reads the head and the key inside the open write transaction, mending a key file one step
// behind a committed seal, and starting a new key lineage when the key is gone or foreign.
bool store::load_chain_head(micros now) {
    if (txn_.loaded) return true;
    stmt last(db_, "SELECT seq,epoch,kind,hash FROM chain ORDER BY seq DESC LIMIT 1");
    const int rc = last.step();
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        last_error_ = "read the evidence head: " + last.error();
        return false;
    }
    ev::head h;
    std::int64_t last_epoch = 0;
    if (rc == SQLITE_ROW) {
        h.seq = last.i64(0);
        last_epoch = last.i64(1);
        h.last_is_seal = last.text(2) == ev::kinds::seal;
        h.hash = last.text(3);
    }
    std::string why;
    auto key = read_sealing_key(sealing_key_path(state_dir_), why);
    const std::string key_id = meta_value(db_, "evidence_key_id");
    if (key && key->key_id == key_id && h.seq > 0) {
        if (h.last_is_seal && key->epoch == last_epoch) {
            key->epoch += 1;
            key->key = ev::evolve(key->key, key->epoch);
            if (!write_sealing_key(sealing_key_path(state_dir_), *key, why)) {
                last_error_ = "evolve the evidence sealing key: " + why;
                return false;
            }
        }
        const std::int64_t expected = h.last_is_seal ? last_epoch + 1 : last_epoch;
        if (key->epoch == expected) {
            h.epoch = key->epoch;
            txn_.head = h;
            txn_.key = key->key;
            txn_.key_id = key->key_id;
            txn_.loaded = true;
            return true;
        }
        why = "the sealing key is at epoch " + std::to_string(key->epoch) +
              " but the chain's last entry " + std::to_string(h.seq) + " expects epoch " +
              std::to_string(expected) + " (entries deleted or the key file replaced)";
    } else if (key && key->key_id != key_id) {
        why = "the sealing key file belongs to another chain (key id " + key->key_id + ")";
    }
    if (h.seq == 0) why = "the chain is empty";
    return start_chain(now, why);
}

// A new key lineage: K_0 drawn, the verification key written for the operator, the key file at
// epoch 0, and an `init` entry saying why. On a chain that already has entries this is itself
// evidence: the old verification key stops verifying here, and the entry says so.
bool store::start_chain(micros now, const std::string& reason) {
    auto k0 = ev::random_key();
    if (!k0) {
        last_error_ = "evidence: no random key from OpenSSL";
        return false;
    }
    const std::string vpath = verification_key_path(state_dir_);
    const std::string previous_id = meta_value(db_, "evidence_key_id");
    stmt any(db_, "SELECT count(*) FROM chain");
    const bool fresh = any.step() == SQLITE_ROW && any.i64(0) == 0;
    if (fresh) ::unlink(vpath.c_str());  // left by a start that never committed: it sealed nothing
    std::string why;
    std::string written_to = vpath;
    if (!write_verification_key(written_to, *k0, why)) {
        written_to = vpath + "." + ev::key_id(*k0);
        if (!write_verification_key(written_to, *k0, why)) {
            last_error_ = "evidence: " + why;
            return false;
        }
    }
    const std::string id = ev::key_id(*k0);
    if (!write_sealing_key(sealing_key_path(state_dir_), {id, 0, *k0}, why)) {
        last_error_ = "evidence: " + why;
        return false;
    }
    stmt m(db_, "INSERT OR REPLACE INTO meta(key,value) VALUES('evidence_key_id',?)");
    m.bind(1, id);
    if (!finish(m)) return false;
    stmt last(db_, "SELECT seq,hash FROM chain ORDER BY seq DESC LIMIT 1");
    ev::head h;
    if (last.step() == SQLITE_ROW) {
        h.seq = last.i64(0);
        h.hash = last.text(1);
    }
    h.epoch = 0;
    txn_.head = h;
    txn_.key = *k0;
    txn_.key_id = id;
    txn_.loaded = true;
    nlohmann::json body = {{"key_id", id}, {"format", "glasswatch evidence v1"}};
    if (!fresh) {
        body["previous_key_id"] = previous_id;
        body["reason"] = reason;
        spdlog::error(
            "evidence: {}; a new sealing key (key id {}) starts at entry {}: the entries before "
            "it verify with the old verification key, the entries after it with the new one, "
            "written to {}",
            reason, id, h.seq + 1, written_to);
    } else {
        spdlog::warn(
            "evidence: a new verification key (key id {}) was written to {}: copy it off this "
            "machine for your auditors and delete it here (docs/evidence.md)",
            id, written_to);
    }
    return append(ev::kinds::init, "key " + id,
                  body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), now);
}

bool store::insert_entry(const ev::entry& e) {
    const std::string sql =
        std::string("INSERT INTO chain(") + entry_columns + ") VALUES(?,?,?,?,?,?,?,?,?)";
    stmt q(db_, sql.c_str());
    q.bind(1, e.seq)
        .bind(2, e.epoch)
        .bind(3, e.kind)
        .bind(4, e.recorded_at)
        .bind(5, e.ref)
        .bind(6, e.body)
        .bind(7, e.prev_hash)
        .bind(8, e.hash)
        .bind(9, e.mac);
    return finish(q);
}

bool store::append(std::string_view kind, const std::string& ref, const std::string& body,
                   micros now) {
    if (!load_chain_head(now)) return false;
    if (txn_.sealed) {
        // A seal is a transaction's last entry: the key evolves only after the commit.
        last_error_ = "evidence: an entry after the seal in one transaction";
        return false;
    }
    const ev::entry e = ev::make_entry(txn_.head, txn_.key, kind, now, ref, body);
    if (!insert_entry(e)) return false;
    txn_.head = ev::advance(txn_.head, e);
    return true;
}

bool store::seal(micros now) {
    if (!load_chain_head(now)) return false;
    if (txn_.head.last_is_seal) return true;  // nothing since the last seal
    const ev::entry s = ev::make_seal(txn_.head, txn_.key, now);
    if (!insert_entry(s)) return false;
    txn_.head = ev::advance(txn_.head, s);
    txn_.sealed = true;
    return true;
}

bool store::append_delivery(const std::string& alert_id, const std::string& sink,
                            std::string_view result, micros now, const std::string& error,
                            const std::string& sink_ref) {
    stmt q(db_, "SELECT attempts FROM outbox WHERE alert_id=? AND sink=?");
    q.bind(1, alert_id).bind(2, sink);
    ev::delivery_record d{alert_id,
                          sink,
                          std::string(result),
                          q.step() == SQLITE_ROW ? static_cast<int>(q.i64(0)) : 0,
                          error,
                          sink_ref};
    return append(ev::kinds::delivery, alert_id, ev::delivery_body(d), now);
}

// Seals what a version-3 file holds, in the order it happened as far as the file tells: each
// alert with its record, each delivery's state, the drills and the sink episodes, then an entry
// that says this was a migration (what came before it rests on the old, unsealed hash chain).
bool store::migrate_legacy_evidence(micros now) {
    std::int64_t alerts = 0, deliveries = 0, drills = 0, episodes = 0, notes = 0;
    std::vector<std::pair<std::string, std::vector<std::string>>> order;
    {
        stmt q(db_, "SELECT alert_id,source,raw FROM evidence ORDER BY seq");
        while (q.step() == SQLITE_ROW) {
            const std::string id = q.text(0), source = q.text(1), raw = q.blob(2);
            if (source == "operator") {
                if (!append(ev::kinds::operator_action, id, raw, now)) return false;
                ++notes;
                continue;
            }
            auto a = alert_from_table(db_, id);
            if (!a) continue;
            std::vector<std::string> sinks;
            stmt o(db_, "SELECT sink FROM outbox WHERE alert_id=? ORDER BY sink");
            o.bind(1, id);
            while (o.step() == SQLITE_ROW)
                sinks.push_back(o.text(0));
            if (!append(ev::kinds::alert, id, ev::alert_body(*a, source, raw, sinks), now))
                return false;
            ++alerts;
        }
    }
    {
        // Alerts the old table never chained (none should exist) are sealed too.
        stmt q(db_,
               "SELECT alert_id,source FROM alerts WHERE alert_id NOT IN "
               "(SELECT alert_id FROM evidence WHERE source<>'operator') ORDER BY observed_at");
        while (q.step() == SQLITE_ROW) {
            auto a = alert_from_table(db_, q.text(0));
            std::vector<std::string> sinks;
            stmt o(db_, "SELECT sink FROM outbox WHERE alert_id=? ORDER BY sink");
            o.bind(1, a->id);
            while (o.step() == SQLITE_ROW)
                sinks.push_back(o.text(0));
            if (!append(ev::kinds::alert, a->id, ev::alert_body(*a, q.text(1), "", sinks), now))
                return false;
            ++alerts;
        }
    }
    {
        stmt q(db_,
               "SELECT alert_id,sink,state,attempts,coalesce(last_error,''),coalesce(sink_ref,'') "
               "FROM outbox WHERE state<>'pending' OR attempts>0 ORDER BY created_at");
        while (q.step() == SQLITE_ROW) {
            const std::string state = q.text(2);
            ev::delivery_record d{q.text(0),
                                  q.text(1),
                                  state == "pending" ? "retry" : state,
                                  static_cast<int>(q.i64(3)),
                                  q.text(4),
                                  q.text(5)};
            if (!append(ev::kinds::delivery, d.alert_id, ev::delivery_body(d), now)) return false;
            ++deliveries;
        }
    }
    {
        stmt q(db_, "SELECT drill_id,account_id,account_label,starts_at,ends_at,note FROM drills");
        while (q.step() == SQLITE_ROW) {
            nlohmann::json b = {{"drill_id", q.text(0)},      {"account_id", q.text(1)},
                                {"account_label", q.text(2)}, {"starts_at", q.i64(3)},
                                {"ends_at", q.i64(4)},        {"note", q.text(5)}};
            if (!append(ev::kinds::drill, q.text(0),
                        b.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), now))
                return false;
            ++drills;
        }
    }
    {
        stmt q(db_, "SELECT sink,cause,opened_at,detail,coalesce(closed_at,0) FROM sink_episodes");
        while (q.step() == SQLITE_ROW) {
            nlohmann::json b = {{"sink", q.text(0)},
                                {"cause", q.text(1)},
                                {"opened_at", q.i64(2)},
                                {"detail", q.text(3)},
                                {"closed_at", q.i64(4)}};
            if (!append(ev::kinds::sink_episode, q.text(0),
                        b.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), now))
                return false;
            ++episodes;
        }
    }
    nlohmann::json body = {
        {"from_schema", 3},
        {"alerts", alerts},
        {"deliveries", deliveries},
        {"drills", drills},
        {"sink_episodes", episodes},
        {"operator_actions", notes},
        {"note",
         "sealed at migration: the entries above record the state file as it was at this moment; "
         "their history before it rests on the unsealed hash chain of schema 3"}};
    spdlog::warn(
        "evidence: sealed the existing state ({} alerts, {} delivery records, {} drills) "
        "into the new chain",
        alerts, deliveries, drills);
    return append(ev::kinds::migration, "schema 3",
                  body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), now);
}

bool store::record(std::string_view kind, const std::string& ref, const std::string& body,
                   micros now) {
    if (!begin_write()) return false;
    if (!append(kind, ref, body, now) || !seal(now)) {
        abort_write();
        return false;
    }
    return end_write();
}

// Runs every second: the last seal is found by walking the primary key back from the end (a
// few rows), never by scanning the whole chain for its kind.
bool store::seal_if_due(micros now, micros max_age) {
    stmt q(db_,
           "SELECT min(recorded_at) FROM chain WHERE seq > "
           "coalesce((SELECT seq FROM chain WHERE kind='seal' ORDER BY seq DESC LIMIT 1),0)");
    if (q.step() != SQLITE_ROW || q.is_null(0)) return true;  // nothing waits
    if (now - q.i64(0) < max_age) return true;
    if (!begin_write()) return false;
    if (!seal(now)) {
        abort_write();
        return false;
    }
    return end_write();
}

std::optional<evidence_state> store::evidence() {
    evidence_state st;
    stmt last(db_, "SELECT seq,epoch,kind,hash FROM chain ORDER BY seq DESC LIMIT 1");
    if (last.step() == SQLITE_ROW) {
        st.head.seq = last.i64(0);
        st.head.epoch = last.i64(1);
        st.head.last_is_seal = last.text(2) == ev::kinds::seal;
        st.head.hash = last.text(3);
    }
    std::string why;
    if (auto key = read_sealing_key(sealing_key_path(state_dir_), why)) st.head.epoch = key->epoch;
    st.key_id = meta_value(db_, "evidence_key_id");
    stmt u(db_,
           "SELECT count(*) FROM chain WHERE seq > "
           "coalesce((SELECT seq FROM chain WHERE kind='seal' ORDER BY seq DESC LIMIT 1),0)");
    if (u.step() == SQLITE_ROW) st.unsealed = u.i64(0);
    st.verification_key_on_host = ::access(verification_key_path(state_dir_).c_str(), F_OK) == 0;
    return st;
}

std::string store::evidence_anchor() {
    stmt q(db_, "SELECT seq,hash FROM chain ORDER BY seq DESC LIMIT 1");
    if (q.step() != SQLITE_ROW) return {};
    return ev::anchor_text(q.i64(0), q.text(1));
}

std::vector<ev::entry> store::evidence_entries(std::int64_t from_seq) {
    std::vector<ev::entry> out;
    const std::string sql =
        std::string("SELECT ") + entry_columns + " FROM chain WHERE seq>=? ORDER BY seq";
    stmt q(db_, sql.c_str());
    q.bind(1, from_seq);
    while (q.step() == SQLITE_ROW)
        out.push_back(*read_entry(q));
    return out;
}

ev::verify_report store::verify_evidence(ev::verify_input in) {
    const std::vector<ev::entry> entries = evidence_entries(1);
    std::string why;
    auto key = read_sealing_key(sealing_key_path(state_dir_), why);
    if (key) in.key_epoch = key->epoch;
    in.from_genesis = true;
    ev::verify_report rep = ev::verify(entries, in);
    if (!rep.ok) return rep;
    if (!key) {
        rep.ok = false;
        rep.first_bad_seq = rep.last_seq + 1;
        rep.problem = "the sealing key is gone (" + why +
                      "): nothing proves the chain was not cut after entry " +
                      std::to_string(rep.last_seq);
        return rep;
    }
    auto fail = [&rep](std::int64_t seq, std::string problem) {
        rep.ok = false;
        rep.first_bad_seq = seq;
        rep.problem = std::move(problem);
        return rep;
    };
    // The operational tables against the entries that sealed them.
    std::map<std::string, const ev::entry*> alert_entries;
    std::map<std::pair<std::string, std::string>, const ev::entry*> last_delivery;
    for (const auto& e : entries) {
        if (e.kind == ev::kinds::alert) {
            alert_entries.emplace(e.ref, &e);
        } else if (e.kind == ev::kinds::delivery) {
            if (auto d = ev::parse_delivery(e.body)) last_delivery[{d->alert_id, d->sink}] = &e;
        }
    }
    std::map<std::string, bool> seen_alert;
    {
        stmt q(db_, "SELECT DISTINCT alert_id FROM outbox UNION SELECT alert_id FROM alerts");
        while (q.step() == SQLITE_ROW) {
            const std::string id = q.text(0);
            auto a = alert_from_table(db_, id);
            const auto it = alert_entries.find(id);
            if (it == alert_entries.end())
                return fail(rep.last_seq + 1,
                            "alert " + id + " is in the state but in no sealed entry (added)");
            if (a) {
                const std::string diff = ev::alert_difference(it->second->body, *a);
                if (!diff.empty())
                    return fail(it->second->seq, "alert " + id + ": its " + diff +
                                                     " differs from sealed entry " +
                                                     std::to_string(it->second->seq) +
                                                     " (the alerts table was edited)");
            }
            seen_alert[id] = true;
        }
    }
    {
        stmt q(db_, "SELECT alert_id FROM alerts");
        std::map<std::string, bool> in_table;
        while (q.step() == SQLITE_ROW)
            in_table[q.text(0)] = true;
        for (const auto& [id, e] : alert_entries)
            if (!in_table.count(id))
                return fail(e->seq, "alert " + id + " of sealed entry " + std::to_string(e->seq) +
                                        " was deleted from the alerts table");
    }
    std::map<std::pair<std::string, std::string>, bool> rows;
    {
        stmt q(db_, "SELECT alert_id,sink,state FROM outbox");
        while (q.step() == SQLITE_ROW) {
            const std::string id = q.text(0), sink = q.text(1), state = q.text(2);
            rows[{id, sink}] = true;
            const auto d = last_delivery.find({id, sink});
            if (d == last_delivery.end()) {
                const auto a = alert_entries.find(id);
                const auto sinks = a == alert_entries.end() ? std::vector<std::string>{}
                                                            : ev::alert_sinks(a->second->body);
                if (std::find(sinks.begin(), sinks.end(), sink) == sinks.end())
                    return fail(rep.last_seq + 1, "delivery of alert " + id + " to " + sink +
                                                      " is in no sealed entry (added)");
                if (state != "pending")
                    return fail(a->second->seq, "delivery of alert " + id + " to " + sink +
                                                    " says '" + state +
                                                    "' but no sealed entry records it");
                continue;
            }
            const auto rec = ev::parse_delivery(d->second->body);
            if (ev::state_after(rec->result) != state)
                return fail(d->second->seq, "delivery of alert " + id + " to " + sink + " says '" +
                                                state + "' but sealed entry " +
                                                std::to_string(d->second->seq) + " recorded '" +
                                                rec->result + "' (the outbox was edited)");
        }
    }
    for (const auto& [key2, e] : last_delivery)
        if (!rows.count(key2))
            return fail(e->seq, "the delivery of alert " + key2.first + " to " + key2.second +
                                    " recorded by sealed entry " + std::to_string(e->seq) +
                                    " was deleted from the outbox");
    for (const auto& [id, e] : alert_entries)
        for (const auto& sink : ev::alert_sinks(e->body))
            if (!rows.count({id, sink}))
                return fail(e->seq, "the delivery of alert " + id + " to " + sink +
                                        " queued by sealed entry " + std::to_string(e->seq) +
                                        " was deleted from the outbox");
    return rep;
}

}  // namespace glasswatch::io
