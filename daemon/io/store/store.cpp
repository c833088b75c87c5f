#include "io/store/store.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "core/base/crypto.hpp"
#include "core/evidence/records.hpp"
#include "io/base/failpoint.hpp"
#include "io/store/store_sql.hpp"

namespace glasswatch::io {

using namespace store_sql;

std::string_view to_string(delivery_state s) noexcept {
    switch (s) {
        case delivery_state::pending:
            return "pending";
        case delivery_state::accepted:
            return "accepted";
        case delivery_state::confirmed:
            return "confirmed";
        case delivery_state::failed:
            return "failed";
    }
    return "?";
}

namespace {

constexpr const char* schema_v1 = R"SQL(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE alerts(
  alert_id TEXT PRIMARY KEY,
  rule TEXT NOT NULL,
  severity TEXT NOT NULL,
  tenant_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  event_time INTEGER NOT NULL,
  observed_at INTEGER NOT NULL,
  subject_id TEXT NOT NULL,
  subject_label TEXT NOT NULL,
  drill_id TEXT,
  summary TEXT NOT NULL,
  sms TEXT NOT NULL,
  detail TEXT NOT NULL,
  source TEXT NOT NULL);
CREATE INDEX alerts_observed ON alerts(observed_at);
CREATE TABLE outbox(
  alert_id TEXT NOT NULL REFERENCES alerts(alert_id),
  sink TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending',
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  accepted_at INTEGER,
  confirmed_at INTEGER,
  last_error TEXT,
  sink_ref TEXT,
  PRIMARY KEY(alert_id, sink));
CREATE INDEX outbox_due ON outbox(sink, state, next_attempt_at);
CREATE TABLE evidence(
  seq INTEGER PRIMARY KEY,
  alert_id TEXT NOT NULL,
  source TEXT NOT NULL,
  recorded_at INTEGER NOT NULL,
  raw BLOB NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL);
CREATE INDEX evidence_alert ON evidence(alert_id);
CREATE TABLE checkpoints(source TEXT PRIMARY KEY, position TEXT NOT NULL, updated_at INTEGER NOT NULL);
)SQL";

constexpr const char* schema_v2 = R"SQL(
CREATE TABLE drills(
  drill_id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL,
  account_label TEXT NOT NULL,
  starts_at INTEGER NOT NULL,
  ends_at INTEGER NOT NULL,
  note TEXT NOT NULL,
  created_at INTEGER NOT NULL);
CREATE INDEX drills_account ON drills(account_id, starts_at);
CREATE INDEX alerts_drill ON alerts(drill_id);
)SQL";

// 3: alerts.rules (one alert per touch names every rule), sink_episodes (a broken sink is one
// episode with its recovery).
constexpr const char* schema_v3 = R"SQL(
ALTER TABLE alerts ADD COLUMN rules TEXT NOT NULL DEFAULT '';
UPDATE alerts SET rules=rule;
CREATE TABLE sink_episodes(
  sink TEXT NOT NULL,
  cause TEXT NOT NULL,
  opened_at INTEGER NOT NULL,
  holds INTEGER NOT NULL,
  detail TEXT NOT NULL,
  alert_id TEXT NOT NULL,
  config_fp TEXT NOT NULL,
  released_at INTEGER,
  released_by TEXT,
  closed_at INTEGER,
  closed_by TEXT,
  PRIMARY KEY(sink, cause, opened_at));
CREATE INDEX sink_episodes_open ON sink_episodes(sink, closed_at);
)SQL";

// 4: the sealed chain (store_evidence.cpp). The hash-chained `evidence` table it replaces is
// copied into the chain by the migration and dropped.
constexpr const char* schema_v4 = R"SQL(
CREATE TABLE chain(
  seq INTEGER PRIMARY KEY,
  epoch INTEGER NOT NULL,
  kind TEXT NOT NULL,
  recorded_at INTEGER NOT NULL,
  ref TEXT NOT NULL,
  body TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL,
  mac TEXT NOT NULL);
CREATE INDEX chain_ref ON chain(ref, kind);
)SQL";

micros now_micros() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

bool store::finish(stmt& q) {
    if (q.step() == SQLITE_DONE) return true;
    last_error_ = q.error();
    return false;
}

bool store::exec(const char* sql) {
    char* msg = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
        last_error_ = msg ? msg : sqlite3_errmsg(db_);
        sqlite3_free(msg);
        return false;
    }
    return true;
}

namespace {

// What an operator can do about a state file glasswatch refuses (the daemon never resets it).
constexpr const char* refused_advice =
    "glasswatch has not changed it and will not start on it. Keep it for the post-mortem; then "
    "restore the newest backup to this path, or move it (with any -wal/-shm file next to it) "
    "aside to start with empty state: sources then restart from initial_lookback / "
    "start_lookback, and alerts it held that were not delivered yet must be checked by hand";

// Creates a complete, empty state database at `path`: written as `path`.new, closed (durable,
// no journal left) and renamed into place, so a crash during the very first start leaves no
// half-made file. A glasswatch.db that exists is therefore always a whole database, and an
// empty or schema-less one is damage (truncation, a bad restore), never a fresh start.
bool create_fresh(const std::string& path, const std::string& schema_sql, std::string& error) {
    const std::string tmp = path + ".new";
    for (const char* suffix : {"", "-journal", "-wal", "-shm"})
        ::unlink((tmp + suffix).c_str());
    sqlite3* db = nullptr;
    int rc =
        sqlite3_open_v2(tmp.c_str(), &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    char* msg = nullptr;
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, schema_sql.c_str(), nullptr, nullptr, &msg);
    if (rc != SQLITE_OK) {
        error = msg ? msg : (db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_free(msg);
        sqlite3_close_v2(db);
        ::unlink(tmp.c_str());
        return false;
    }
    if (sqlite3_close(db) != SQLITE_OK) {
        error = "cannot close the new database";
        return false;
    }
    // synchronous=FULL made the file durable at COMMIT; the rename and the directory entry
    // need their own fsync.
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        error = std::string("cannot rename it into place: ") + std::strerror(errno);
        return false;
    }
    const std::string dir = std::filesystem::path(path).parent_path().string();
    int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
    return true;
}

}  // namespace

std::unique_ptr<store> store::open(const std::string& state_dir, std::string& error,
                                   bool read_only) {
    std::unique_ptr<store> s(new store());
    std::error_code ec;
    s->path_ = (std::filesystem::path(state_dir) / "glasswatch.db").string();
    s->state_dir_ = state_dir;
    if (read_only && !std::filesystem::exists(s->path_)) {
        error = s->path_ + ": no state database (has the daemon run?)";
        return nullptr;
    }
    if (!read_only) {
        std::filesystem::create_directories(state_dir, ec);
        if (ec) {
            error = state_dir + ": cannot create the state directory: " + ec.message();
            return nullptr;
        }
        // Raw sign-in evidence (IPs, UPNs) is nobody else's business: the directory is the
        // daemon's alone, and files made before this rule are tightened too.
        ::chmod(state_dir.c_str(), 0700);
        for (const char* suffix : {"", "-wal", "-shm", "-journal"})
            ::chmod((s->path_ + suffix).c_str(), 0600);
        // SQLite needs to create its -wal/-shm files next to the database: a directory it
        // cannot write is a start-up error here, not a confusing one at the first commit.
        if (::access(state_dir.c_str(), W_OK | X_OK) != 0) {
            error = state_dir + ": the state directory is not writable (" + std::strerror(errno) +
                    "); glasswatch keeps its outbox, evidence and source positions there. Make "
                    "it writable for the daemon's user (mount, owner, StateDirectory=) and start "
                    "again";
            return nullptr;
        }
        if (!std::filesystem::exists(s->path_, ec)) {
            const std::string now = std::to_string(now_micros());
            std::string sql = std::string("PRAGMA synchronous=FULL;BEGIN IMMEDIATE;") + schema_v1 +
                              schema_v2 + schema_v3 + schema_v4 +
                              "DROP TABLE evidence;"
                              "INSERT INTO meta(key,value) VALUES('schema_version','4');"
                              "INSERT INTO meta(key,value) VALUES('created_at','" +
                              now + "');COMMIT;";
            std::string why;
            if (!create_fresh(s->path_, sql, why)) {
                error = s->path_ + ": cannot create the state database: " + why;
                return nullptr;
            }
        }
    }
    if (std::filesystem::file_size(s->path_, ec) == 0 && !ec) {
        error = s->path_ +
                ": the state database is empty (0 bytes). glasswatch creates it complete and "
                "renames it into place, so it was truncated (a crash of the file system, a bad "
                "restore). " +
                refused_advice;
        return nullptr;
    }
    int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    if (sqlite3_open_v2(s->path_.c_str(), &s->db_, flags | SQLITE_OPEN_NOMUTEX, nullptr) !=
        SQLITE_OK) {
        error = s->path_ + ": cannot open: " + (s->db_ ? sqlite3_errmsg(s->db_) : "out of memory");
        return nullptr;
    }
    // Until the file is known good, closing must not checkpoint a WAL into it: a refused file
    // stays byte for byte what it was.
    sqlite3_db_config(s->db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    sqlite3_busy_timeout(s->db_, 5000);
    sqlite3_extended_result_codes(s->db_, 1);
    auto fail = [&](const std::string& what) {
        error = s->path_ + ": " + what;
        return nullptr;
    };
    // A file that is not a database (or is damaged) fails here rather than being replaced.
    {
        stmt q(s->db_, "PRAGMA quick_check");
        if (!q.ok())
            return fail("not a glasswatch database or corrupt (" +
                        std::string(sqlite3_errmsg(s->db_)) + "); refusing to touch it. " +
                        refused_advice);
        int rc = q.step();
        if (rc != SQLITE_ROW || q.text(0) != "ok") {
            std::string why = rc == SQLITE_ROW ? q.text(0) : q.error();
            std::replace(why.begin(), why.end(), '\n', ' ');  // one log line
            return fail("database is corrupt (" + why + "); refusing to touch it. " +
                        refused_advice);
        }
    }
    if (!read_only && sqlite3_db_readonly(s->db_, "main") == 1)
        return fail(
            "the state database is not writable (read-only file or file system); make it "
            "writable for the daemon's user and start again");
    if (!read_only) {
        if (!s->exec("PRAGMA journal_mode=WAL") || !s->exec("PRAGMA synchronous=FULL") ||
            !s->exec("PRAGMA foreign_keys=ON"))
            return fail("cannot configure: " + s->last_error_);
    }
    // Schema version: 0 = empty file.
    int version = 0;
    {
        stmt t(s->db_, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'");
        if (t.step() != SQLITE_ROW) return fail("cannot read schema: " + t.error());
        if (t.i64(0) == 1) {
            stmt v(s->db_, "SELECT value FROM meta WHERE key='schema_version'");
            if (v.step() != SQLITE_ROW)
                return fail("database has no schema version; not a glasswatch database");
            version = std::atoi(v.text(0).c_str());
            if (version <= 0) return fail("invalid schema version '" + v.text(0) + "'");
        } else {
            stmt any(s->db_, "SELECT count(*) FROM sqlite_master");
            if (any.step() == SQLITE_ROW && any.i64(0) > 0)
                return fail("database holds tables but no glasswatch schema; refusing to touch it");
            // create_fresh() never leaves a schema-less file behind: this one lost its content.
            return fail(std::string("database holds no glasswatch schema (truncated or "
                                    "overwritten?). ") +
                        refused_advice);
        }
    }
    if (version > store_schema_version)
        return fail("database schema version " + std::to_string(version) +
                    " is newer than this glasswatch understands (" +
                    std::to_string(store_schema_version) +
                    "); upgrade glasswatch instead of downgrading the state");
    s->schema_version_ = version;
    if (read_only) return s;
    // Migrations: each step in its own transaction, so a crash mid-migration leaves the old
    // version intact.
    auto migrate = [&s](const std::string& step_sql, int to) {
        const std::string sql = "BEGIN IMMEDIATE;" + step_sql + "UPDATE meta SET value='" +
                                std::to_string(to) + "' WHERE key='schema_version';COMMIT;";
        if (s->exec(sql.c_str())) return true;
        s->exec("ROLLBACK");
        return false;
    };
    if (version == 1) {
        if (!migrate(std::string(schema_v2) +
                         "INSERT OR IGNORE INTO meta(key,value) VALUES('created_at','" +
                         std::to_string(now_micros()) + "');",
                     2))
            return fail("cannot migrate schema to version 2: " + s->last_error_);
        version = 2;
    }
    if (version == 2) {
        if (!migrate(schema_v3, 3))
            return fail("cannot migrate schema to version 3: " + s->last_error_);
        version = 3;
    }
    if (version == 3) {
        // One transaction: the chain starts, seals what the file holds, says so, and the old
        // evidence table goes. A crash leaves version 3 as it was.
        const micros now = now_micros();
        const bool ok = s->begin_write() && s->exec(schema_v4) && s->start_chain(now, "") &&
                        s->migrate_legacy_evidence(now) &&
                        s->exec(
                            "DROP TABLE evidence;UPDATE meta SET value='4' WHERE "
                            "key='schema_version'") &&
                        s->seal(now) && s->end_write();
        if (!ok) {
            s->abort_write();
            return fail("cannot migrate schema to version 4 (sealed evidence): " + s->last_error_);
        }
        version = 4;
    }
    s->schema_version_ = version;
    // A new file: the chain starts (its verification key is written for the operator).
    {
        stmt any(s->db_, "SELECT count(*) FROM chain");
        if (any.step() == SQLITE_ROW && any.i64(0) == 0) {
            const micros now = now_micros();
            if (!(s->begin_write() && s->start_chain(now, "") && s->seal(now) && s->end_write())) {
                s->abort_write();
                return fail("cannot start the evidence chain: " + s->last_error_);
            }
        }
    }
    s->schema_version_ = version;
    sqlite3_db_config(s->db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, nullptr);
    s->seal_on_close_ = true;  // a file refused above is never written, not even a seal
    return s;
}

store::~store() {
    // Whatever wrote this store last (the daemon at its stop, a CLI command that sent alerts)
    // leaves the chain sealed: no delivery record waits unsealed for the next writer.
    if (db_ && seal_on_close_ && !txn_.open && !seal_if_due(now_micros(), 0))
        spdlog::error("evidence: cannot seal at close: {}", last_error_);
    if (db_) sqlite3_close_v2(db_);
}

commit_result store::commit(const std::vector<routed_finding>& findings,
                            const std::vector<checkpoint>& checkpoints, micros now) {
    commit_result r;
    auto abort = [&](const std::string& what) {
        r.ok = false;
        r.error = what;
        r.new_alerts.clear();
        r.duplicates = 0;
        abort_write();
        return r;
    };
    // Test hook (fault tests): while this file exists the disk is "full".
    if (const char* full = std::getenv("GLASSWATCH_TEST_STORE_FULL_FILE");
        full && ::access(full, F_OK) == 0) {
        r.error = "database or disk is full (test hook)";
        return r;
    }
    if (!begin_write()) {
        r.error = "begin: " + last_error_;
        return r;
    }
    for (const auto& rf : findings) {
        core::alert a = rf.f.a;
        // A declared drill covering this account at the event's time labels the alert.
        if (!a.drill && !a.subject_id.empty() && rf.f.source != "health") {
            stmt d(db_,
                   "SELECT drill_id FROM drills WHERE account_id=? AND starts_at<=? AND ends_at>=? "
                   "ORDER BY starts_at DESC LIMIT 1");
            d.bind(1, a.subject_id).bind(2, a.event_time).bind(3, a.event_time);
            int rc = d.step();
            if (rc == SQLITE_ROW)
                core::label_drill(a, d.text(0));
            else if (rc != SQLITE_DONE)
                return abort("read drills: " + d.error());
        }
        stmt ins(
            db_,
            "INSERT OR IGNORE INTO alerts(alert_id,rule,severity,tenant_id,event_id,event_time,"
            "observed_at,subject_id,subject_label,drill_id,summary,sms,detail,source,rules) "
            "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
        ins.bind(1, a.id)
            .bind(2, a.rule)
            .bind(3, core::to_string(a.sev))
            .bind(4, a.tenant_id)
            .bind(5, a.event_id)
            .bind(6, a.event_time)
            .bind(7, a.observed_at)
            .bind(8, a.subject_id)
            .bind(9, a.subject_label);
        if (a.drill)
            ins.bind(10, a.drill_id);
        else
            ins.bind_null(10);
        ins.bind(11, a.summary).bind(12, a.sms).bind(13, a.detail_json).bind(14, rf.f.source);
        ins.bind(15, join_rules(a));
        if (ins.step() != SQLITE_DONE) return abort("insert alert: " + ins.error());
        if (sqlite3_changes(db_) == 0) {
            ++r.duplicates;  // same event seen again: the alert is already queued or delivered
            continue;
        }
        r.new_alerts.push_back(a.id);
        if (a.drill) r.drill_alerts.push_back(a.id);
        for (const auto& sink : rf.sinks) {
            stmt ob(db_,
                    "INSERT OR IGNORE INTO "
                    "outbox(alert_id,sink,state,attempts,next_attempt_at,created_at) "
                    "VALUES(?,?,'pending',0,?,?)");
            ob.bind(1, a.id).bind(2, sink).bind(3, now).bind(4, now);
            if (ob.step() != SQLITE_DONE) return abort("insert outbox: " + ob.error());
        }
        if (!append(core::evidence::kinds::alert, a.id,
                    core::evidence::alert_body(a, rf.f.source, rf.f.raw, rf.sinks), now))
            return abort("chain evidence: " + last_error_);
    }
    for (const auto& c : checkpoints) {
        stmt cp(db_,
                "INSERT INTO checkpoints(source,position,updated_at) VALUES(?,?,?) "
                "ON CONFLICT(source) DO UPDATE SET position=excluded.position, "
                "updated_at=excluded.updated_at");
        cp.bind(1, c.source).bind(2, c.position).bind(3, now);
        if (cp.step() != SQLITE_DONE) return abort("write checkpoint: " + cp.error());
    }
    // An alert is sealed in the transaction that stores it: from the commit on, nobody who
    // takes this machine can rewrite it.
    if (!r.new_alerts.empty() && !seal(now)) return abort("seal evidence: " + last_error_);
    if (!findings.empty()) failpoint("before_outbox_commit");
    if (!checkpoints.empty()) failpoint("mid_checkpoint");
    if (!end_write()) return abort("commit: " + last_error_);
    r.ok = true;
    return r;
}

std::optional<std::string> store::load_checkpoint(const std::string& source) {
    stmt q(db_, "SELECT position FROM checkpoints WHERE source=?");
    q.bind(1, source);
    if (q.step() == SQLITE_ROW) return q.text(0);
    return std::nullopt;
}

std::vector<checkpoint> store::load_checkpoints(const std::string& prefix) {
    std::vector<checkpoint> out;
    stmt q(db_,
           "SELECT source, position FROM checkpoints WHERE substr(source,1,length(?))=? ORDER BY "
           "source");
    q.bind(1, prefix).bind(2, prefix);
    while (q.step() == SQLITE_ROW)
        out.push_back({q.text(0), q.text(1)});
    return out;
}

bool store::add_drill(const drill& d) {
    return in_write([&] {
        stmt q(db_,
               "INSERT INTO drills(drill_id,account_id,account_label,starts_at,ends_at,note,"
               "created_at) VALUES(?,?,?,?,?,?,?)");
        q.bind(1, d.id)
            .bind(2, d.account_id)
            .bind(3, d.account_label)
            .bind(4, d.starts_at)
            .bind(5, d.ends_at)
            .bind(6, d.note)
            .bind(7, d.created_at);
        nlohmann::json b = {{"drill_id", d.id},
                            {"account_id", d.account_id},
                            {"account_label", d.account_label},
                            {"starts_at", d.starts_at},
                            {"ends_at", d.ends_at},
                            {"note", d.note}};
        return finish(q) &&
               append(core::evidence::kinds::drill, d.id,
                      b.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                      d.created_at) &&
               seal(d.created_at);
    });
}

std::vector<drill> store::drills_since(micros since) {
    std::vector<drill> out;
    stmt q(db_,
           "SELECT drill_id,account_id,account_label,starts_at,ends_at,note,created_at FROM drills "
           "WHERE ends_at>=? ORDER BY starts_at");
    q.bind(1, since);
    while (q.step() == SQLITE_ROW) {
        drill d;
        d.id = q.text(0);
        d.account_id = q.text(1);
        d.account_label = q.text(2);
        d.starts_at = q.i64(3);
        d.ends_at = q.i64(4);
        d.note = q.text(5);
        d.created_at = q.i64(6);
        out.push_back(std::move(d));
    }
    return out;
}

std::vector<std::string> store::alerts_of_drill(const std::string& drill_id) {
    std::vector<std::string> out;
    stmt q(db_, "SELECT alert_id FROM alerts WHERE drill_id=? ORDER BY event_time");
    q.bind(1, drill_id);
    while (q.step() == SQLITE_ROW)
        out.push_back(q.text(0));
    return out;
}

std::optional<micros> store::last_successful_drill(const std::string& account_id) {
    stmt q(db_,
           "SELECT max(d.starts_at) FROM drills d JOIN alerts a ON a.drill_id=d.drill_id "
           "JOIN outbox o ON o.alert_id=a.alert_id "
           "WHERE d.account_id=? AND o.state IN ('accepted','confirmed')");
    q.bind(1, account_id);
    if (q.step() == SQLITE_ROW && !q.is_null(0)) return q.i64(0);
    return std::nullopt;
}

micros store::created_at() {
    stmt q(db_, "SELECT value FROM meta WHERE key='created_at'");
    if (q.step() == SQLITE_ROW) return std::atoll(q.text(0).c_str());
    return 0;
}

std::unique_ptr<state_lock> state_lock::acquire(const std::string& state_dir, std::string& error) {
    const std::string path = (std::filesystem::path(state_dir) / "glasswatch.lock").string();
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        error = path + ": cannot open the instance lock: " + std::strerror(errno);
        return nullptr;
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int why = errno;
        char buf[32] = {};
        const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
        ::close(fd);
        std::string holder = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
        while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' '))
            holder.pop_back();
        if (why == EWOULDBLOCK)
            error = state_dir + " is in use by another glasswatch run" +
                    (holder.empty() ? std::string() : " (pid " + holder + ")") +
                    ": one daemon per state directory (a second instance needs its own)";
        else
            error = path + ": cannot lock: " + std::strerror(why);
        return nullptr;
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 ||
        ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
        // The lock holds all the same; only the PID in the message of a second run is lost.
    }
    return std::unique_ptr<state_lock>(new state_lock(fd));
}

state_lock::~state_lock() {
    if (fd_ >= 0) ::close(fd_);
}

}  // namespace glasswatch::io
