// The outbox (one row per alert and sink) and the sinks' episodes: what delivery reads and marks.
#include "io/store/store.hpp"

#include <sqlite3.h>

#include "core/evidence/records.hpp"
#include "io/base/failpoint.hpp"
#include "io/store/runtime.hpp"
#include "io/store/store_sql.hpp"

#include <nlohmann/json.hpp>

namespace glasswatch::io {

using namespace store_sql;

namespace {
constexpr const char* outbox_select_v3 =
    "SELECT o.alert_id,o.sink,o.state,o.attempts,o.next_attempt_at,o.created_at,"
    "coalesce(o.accepted_at,0),coalesce(o.confirmed_at,0),coalesce(o.last_error,''),coalesce(o."
    "sink_ref,''),"
    "a.rule,a.severity,a.tenant_id,a.event_id,a.event_time,a.observed_at,a.subject_id,a.subject_"
    "label,"
    "coalesce(a.drill_id,''),a.summary,a.sms,a.detail,a.rules,"
    "(SELECT seq||':'||substr(hash,1,16) FROM chain ORDER BY seq DESC LIMIT 1) "
    "FROM outbox o JOIN alerts a ON a.alert_id=o.alert_id ";
constexpr const char* outbox_select_v3_no_chain =
    "SELECT o.alert_id,o.sink,o.state,o.attempts,o.next_attempt_at,o.created_at,"
    "coalesce(o.accepted_at,0),coalesce(o.confirmed_at,0),coalesce(o.last_error,''),coalesce(o."
    "sink_ref,''),"
    "a.rule,a.severity,a.tenant_id,a.event_id,a.event_time,a.observed_at,a.subject_id,a.subject_"
    "label,"
    "coalesce(a.drill_id,''),a.summary,a.sms,a.detail,a.rules,'' "
    "FROM outbox o JOIN alerts a ON a.alert_id=o.alert_id ";
// A read-only look (a CLI command) at a state file the daemon has not migrated yet.
constexpr const char* outbox_select_v2 =
    "SELECT o.alert_id,o.sink,o.state,o.attempts,o.next_attempt_at,o.created_at,"
    "coalesce(o.accepted_at,0),coalesce(o.confirmed_at,0),coalesce(o.last_error,''),coalesce(o."
    "sink_ref,''),"
    "a.rule,a.severity,a.tenant_id,a.event_id,a.event_time,a.observed_at,a.subject_id,a.subject_"
    "label,"
    "coalesce(a.drill_id,''),a.summary,a.sms,a.detail,a.rule,'' "
    "FROM outbox o JOIN alerts a ON a.alert_id=o.alert_id ";

outbox_row read_row(stmt& q) {
    outbox_row r;
    r.alert_id = q.text(0);
    r.sink = q.text(1);
    r.state = parse_state(q.text(2));
    r.attempts = static_cast<int>(q.i64(3));
    r.next_attempt_at = q.i64(4);
    r.created_at = q.i64(5);
    r.accepted_at = q.i64(6);
    r.confirmed_at = q.i64(7);
    r.last_error = q.text(8);
    r.sink_ref = q.text(9);
    core::alert& a = r.a;
    a.id = r.alert_id;
    read_alert_columns(q, 10, a);
    a.evidence_head = q.text(23);
    return r;
}
}  // namespace

const char* store::outbox_select() const noexcept {
    if (schema_version_ >= 4) return outbox_select_v3;
    return schema_version_ == 3 ? outbox_select_v3_no_chain : outbox_select_v2;
}

std::vector<outbox_row> store::due(const std::string& sink, micros now, int limit) {
    std::vector<outbox_row> out;
    std::string sql = std::string(outbox_select()) +
                      "WHERE o.sink=? AND o.state='pending' AND (o.next_attempt_at<=? OR "
                      "o.next_attempt_at>?) ORDER BY o.next_attempt_at, o.created_at LIMIT ?";
    stmt q(db_, sql.c_str());
    q.bind(1, sink).bind(2, now).bind(3, now + max_schedule_ahead);
    q.bind(4, static_cast<std::int64_t>(limit));
    while (q.step() == SQLITE_ROW)
        out.push_back(read_row(q));
    return out;
}

std::int64_t store::shift_schedule(const std::string& sink, micros step, micros now) {
    stmt q(db_,
           "UPDATE outbox SET next_attempt_at=next_attempt_at+? "
           "WHERE sink=? AND state='pending' AND next_attempt_at>?");
    q.bind(1, step).bind(2, sink).bind(3, now - step);
    if (q.step() != SQLITE_DONE) {
        last_error_ = q.error();
        return -1;
    }
    return sqlite3_changes(db_);
}

std::vector<outbox_row> store::pending_all() {
    std::vector<outbox_row> out;
    std::string sql =
        std::string(outbox_select()) + "WHERE o.state='pending' ORDER BY o.created_at";
    stmt q(db_, sql.c_str());
    while (q.step() == SQLITE_ROW)
        out.push_back(read_row(q));
    return out;
}

std::vector<outbox_row> store::deliveries_of(const std::string& alert_id) {
    std::vector<outbox_row> out;
    std::string sql = std::string(outbox_select()) + "WHERE o.alert_id=? ORDER BY o.sink";
    stmt q(db_, sql.c_str());
    q.bind(1, alert_id);
    while (q.step() == SQLITE_ROW)
        out.push_back(read_row(q));
    return out;
}

bool store::mark_accepted(const std::string& alert_id, const std::string& sink, micros now,
                          const std::string& sink_ref, bool confirmed) {
    return in_write([&] {
        stmt q(db_,
               "UPDATE outbox SET state=?, attempts=attempts+1, accepted_at=?, confirmed_at=?, "
               "sink_ref=?, last_error=NULL WHERE alert_id=? AND sink=?");
        q.bind(1, confirmed ? "confirmed" : "accepted").bind(2, now);
        if (confirmed)
            q.bind(3, now);
        else
            q.bind_null(3);
        q.bind(4, sink_ref).bind(5, alert_id).bind(6, sink);
        return finish(q) && (sqlite3_changes(db_) == 0 ||
                             append_delivery(alert_id, sink, confirmed ? "confirmed" : "accepted",
                                             now, {}, sink_ref));
    });
}

bool store::mark_confirmed(const std::string& alert_id, const std::string& sink, micros now) {
    return in_write([&] {
        stmt q(db_,
               "UPDATE outbox SET state='confirmed', confirmed_at=? WHERE alert_id=? AND sink=?");
        q.bind(1, now).bind(2, alert_id).bind(3, sink);
        return finish(q) &&
               (sqlite3_changes(db_) == 0 || append_delivery(alert_id, sink, "confirmed", now));
    });
}

bool store::mark_retry(const std::string& alert_id, const std::string& sink, micros next_attempt,
                       const std::string& error, const std::string& sink_ref) {
    return in_write([&] {
        stmt q(db_,
               "UPDATE outbox SET attempts=attempts+1, next_attempt_at=?, last_error=?, "
               "sink_ref=coalesce(nullif(?,''),sink_ref) WHERE alert_id=? AND sink=?");
        q.bind(1, next_attempt).bind(2, error).bind(3, sink_ref).bind(4, alert_id).bind(5, sink);
        return finish(q) && (sqlite3_changes(db_) == 0 ||
                             append_delivery(alert_id, sink, "retry", wall_now(), error, sink_ref));
    });
}

bool store::mark_failed(const std::string& alert_id, const std::string& sink, micros now,
                        const std::string& error) {
    return in_write([&] {
        stmt q(db_,
               "UPDATE outbox SET state='failed', attempts=attempts+1, last_error=?, "
               "next_attempt_at=? WHERE alert_id=? AND sink=?");
        q.bind(1, error).bind(2, now).bind(3, alert_id).bind(4, sink);
        return finish(q) &&
               (sqlite3_changes(db_) == 0 || append_delivery(alert_id, sink, "failed", now, error));
    });
}

bool store::set_sink_ref(const std::string& alert_id, const std::string& sink,
                         const std::string& sink_ref) {
    stmt q(db_, "UPDATE outbox SET sink_ref=? WHERE alert_id=? AND sink=?");
    q.bind(1, sink_ref).bind(2, alert_id).bind(3, sink);
    return finish(q);
}

std::vector<outbox_row> store::list_outbox(const std::string& sink,
                                           std::optional<delivery_state> state, int limit) {
    std::vector<outbox_row> out;
    std::string sql = std::string(outbox_select()) +
                      "WHERE (?='' OR o.sink=?) AND (?='' OR o.state=?) "
                      "ORDER BY o.created_at DESC, o.alert_id, o.sink LIMIT ?";
    stmt q(db_, sql.c_str());
    const std::string st = state ? std::string(to_string(*state)) : std::string();
    q.bind(1, sink).bind(2, sink).bind(3, st).bind(4, st);
    q.bind(5, static_cast<std::int64_t>(limit));
    while (q.step() == SQLITE_ROW)
        out.push_back(read_row(q));
    return out;
}

requeue_result store::requeue(const std::string& sink, const std::string& alert_id, micros now,
                              const std::string& actor) {
    requeue_result r;
    if (!begin_write()) {
        r.error = "begin: " + last_error_;
        return r;
    }
    auto abort = [&](const std::string& what) {
        r = requeue_result{};
        r.error = what;
        abort_write();
        return r;
    };
    // Each row put back is a delivery record of its own, so the outbox and the chain agree.
    std::vector<std::pair<std::string, std::string>> requeued;
    {
        stmt q(db_,
               "SELECT alert_id,sink FROM outbox WHERE state='failed' AND (?='' OR sink=?) AND "
               "(?='' OR alert_id=?)");
        q.bind(1, sink).bind(2, sink).bind(3, alert_id).bind(4, alert_id);
        while (q.step() == SQLITE_ROW)
            requeued.emplace_back(q.text(0), q.text(1));
    }
    std::vector<std::string> sinks;
    {
        stmt q(db_,
               "SELECT DISTINCT sink FROM outbox WHERE (?='' OR sink=?) AND (?='' OR alert_id=?) "
               "ORDER BY sink");
        q.bind(1, sink).bind(2, sink).bind(3, alert_id).bind(4, alert_id);
        while (q.step() == SQLITE_ROW)
            sinks.push_back(q.text(0));
        if (!sink.empty() && sinks.empty()) sinks.push_back(sink);
    }
    {
        stmt q(db_,
               "UPDATE outbox SET state='pending', next_attempt_at=?, "
               "last_error='re-queued by the operator after: '||coalesce(last_error,'') "
               "WHERE state='failed' AND (?='' OR sink=?) AND (?='' OR alert_id=?)");
        q.bind(1, now).bind(2, sink).bind(3, sink).bind(4, alert_id).bind(5, alert_id);
        if (q.step() != SQLITE_DONE) return abort("re-queue: " + q.error());
        r.rows = sqlite3_changes(db_);
    }
    for (const auto& [id, row_sink] : requeued)
        if (!append_delivery(id, row_sink, "requeued", now))
            return abort("evidence: " + last_error_);
    for (const auto& s : sinks) {
        if (!release_episodes(s, now, actor)) return abort("release episodes: " + last_error_);
        if (released_ > 0) r.sinks.push_back(s);
    }
    nlohmann::json note = {{"action", "outbox_retry"}, {"actor", actor}, {"sink", sink},
                           {"alert", alert_id},        {"rows", r.rows}, {"released", r.sinks}};
    if (!append(core::evidence::kinds::operator_action, alert_id.empty() ? sink : alert_id,
                note.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), now) ||
        !seal(now))
        return abort("evidence: " + last_error_);
    if (!end_write()) return abort("commit: " + last_error_);
    r.ok = true;
    return r;
}

namespace {
sink_episode read_episode(stmt& q) {
    sink_episode e;
    e.sink = q.text(0);
    e.cause = q.text(1);
    e.opened_at = q.i64(2);
    e.holds = q.i64(3) != 0;
    e.detail = q.text(4);
    e.alert_id = q.text(5);
    e.config_fp = q.text(6);
    e.closed_at = q.is_null(7) ? 0 : q.i64(7);
    e.closed_by = q.text(8);
    e.released_at = q.is_null(9) ? 0 : q.i64(9);
    e.released_by = q.text(10);
    return e;
}
constexpr const char* episode_columns =
    "SELECT sink,cause,opened_at,holds,detail,alert_id,config_fp,closed_at,"
    "coalesce(closed_by,''),released_at,coalesce(released_by,'') FROM sink_episodes ";
}  // namespace

bool store::open_episode(const sink_episode& e) {
    return in_write([&] {
        stmt q(db_,
               "INSERT OR IGNORE INTO sink_episodes(sink,cause,opened_at,holds,detail,alert_id,"
               "config_fp) VALUES(?,?,?,?,?,?,?)");
        q.bind(1, e.sink)
            .bind(2, e.cause)
            .bind(3, e.opened_at)
            .bind(4, static_cast<std::int64_t>(e.holds ? 1 : 0))
            .bind(5, e.detail)
            .bind(6, e.alert_id)
            .bind(7, e.config_fp);
        nlohmann::json b = {{"event", "opened"},
                            {"cause", e.cause},
                            {"holds", e.holds},
                            {"detail", e.detail},
                            {"alert_id", e.alert_id}};
        return finish(q) &&
               (sqlite3_changes(db_) == 0 ||
                append(core::evidence::kinds::sink_episode, e.sink,
                       b.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                       e.opened_at));
    });
}

std::vector<sink_episode> store::open_episodes(const std::string& sink) {
    std::vector<sink_episode> out;
    if (schema_version_ < 3) return out;
    std::string sql = std::string(episode_columns) +
                      "WHERE closed_at IS NULL AND (?='' OR sink=?) ORDER BY sink, opened_at";
    stmt q(db_, sql.c_str());
    q.bind(1, sink).bind(2, sink);
    while (q.step() == SQLITE_ROW)
        out.push_back(read_episode(q));
    return out;
}

std::vector<sink_episode> store::close_episodes(const std::string& sink, micros now,
                                                const std::string& by) {
    auto open = open_episodes(sink);
    if (open.empty()) return open;
    const bool ok = in_write([&] {
        stmt q(db_,
               "UPDATE sink_episodes SET closed_at=?, closed_by=? WHERE sink=? AND closed_at IS "
               "NULL");
        q.bind(1, now).bind(2, by).bind(3, sink);
        nlohmann::json b = {{"event", "closed"}, {"by", by}, {"episodes", open.size()}};
        return finish(q) &&
               append(core::evidence::kinds::sink_episode, sink,
                      b.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), now);
    });
    if (!ok) return {};
    for (auto& ep : open) {
        ep.closed_at = now;
        ep.closed_by = by;
    }
    return open;
}

bool store::release_episodes(const std::string& sink, micros now, const std::string& by) {
    return in_write([&] {
        stmt q(db_,
               "UPDATE sink_episodes SET released_at=?, released_by=? "
               "WHERE sink=? AND closed_at IS NULL AND holds=1 AND released_at IS NULL");
        q.bind(1, now).bind(2, by).bind(3, sink);
        if (!finish(q)) return false;
        const int changed = sqlite3_changes(db_);
        nlohmann::json b = {{"event", "released"}, {"by", by}};
        const bool ok =
            changed == 0 ||
            append(core::evidence::kinds::sink_episode, sink,
                   b.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), now);
        released_ = changed;
        return ok;
    });
}

bool store::rehold_episode(const std::string& sink, const std::string& cause) {
    return in_write([&] {
        stmt q(db_,
               "UPDATE sink_episodes SET released_at=NULL, released_by=NULL, holds=1 "
               "WHERE sink=? AND cause=? AND closed_at IS NULL");
        q.bind(1, sink).bind(2, cause);
        nlohmann::json b = {{"event", "held again"}, {"cause", cause}};
        return finish(q) &&
               (sqlite3_changes(db_) == 0 ||
                append(core::evidence::kinds::sink_episode, sink,
                       b.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                       wall_now()));
    });
}

std::vector<outbox_row> store::awaiting_confirmation(const std::string& sink, int limit) {
    std::vector<outbox_row> out;
    std::string sql = std::string(outbox_select()) +
                      "WHERE o.sink=? AND o.state='accepted' ORDER BY o.accepted_at LIMIT ?";
    stmt q(db_, sql.c_str());
    q.bind(1, sink).bind(2, static_cast<std::int64_t>(limit));
    while (q.step() == SQLITE_ROW)
        out.push_back(read_row(q));
    return out;
}

std::vector<std::string> store::unconfirmed_without(const std::string& sink, const std::string& to,
                                                    micros older_than) {
    std::vector<std::string> out;
    stmt q(db_,
           "SELECT o.alert_id FROM outbox o WHERE o.sink=? AND o.state<>'confirmed' AND "
           "o.created_at<=? "
           "AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.alert_id=o.alert_id AND e.sink=?) LIMIT "
           "100");
    q.bind(1, sink).bind(2, older_than).bind(3, to);
    while (q.step() == SQLITE_ROW)
        out.push_back(q.text(0));
    return out;
}

bool store::add_outbox(const std::string& alert_id, const std::string& sink, micros now) {
    return in_write([&] {
        stmt q(db_,
               "INSERT OR IGNORE INTO outbox(alert_id,sink,state,attempts,next_attempt_at,"
               "created_at) VALUES(?,?,'pending',0,?,?)");
        q.bind(1, alert_id).bind(2, sink).bind(3, now).bind(4, now);
        return finish(q) &&
               (sqlite3_changes(db_) == 0 || append_delivery(alert_id, sink, "queued", now));
    });
}

std::int64_t store::count_in_state(const std::string& sink, delivery_state state) {
    stmt q(db_, "SELECT count(*) FROM outbox WHERE sink=? AND state=?");
    q.bind(1, sink).bind(2, to_string(state));
    return q.step() == SQLITE_ROW ? q.i64(0) : -1;
}

std::int64_t store::outbox_depth() {
    stmt q(db_, "SELECT count(*) FROM outbox WHERE state='pending'");
    return q.step() == SQLITE_ROW ? q.i64(0) : -1;
}

std::map<std::string, std::int64_t> store::pending_by_sink() {
    std::map<std::string, std::int64_t> out;
    stmt q(db_, "SELECT sink, count(*) FROM outbox WHERE state='pending' GROUP BY sink");
    while (q.step() == SQLITE_ROW)
        out[q.text(0)] = q.i64(1);
    return out;
}

std::optional<micros> store::oldest_undelivered() {
    stmt q(db_, "SELECT min(created_at) FROM outbox WHERE state='pending'");
    if (q.step() == SQLITE_ROW && !q.is_null(0)) return q.i64(0);
    return std::nullopt;
}

// The alert as its outbox rows carry it.
std::optional<core::alert> store::get_alert(const std::string& alert_id) {
    std::string sql = std::string(outbox_select()) + "WHERE o.alert_id=? LIMIT 1";
    stmt q(db_, sql.c_str());
    q.bind(1, alert_id);
    if (q.step() == SQLITE_ROW) return read_row(q).a;
    return std::nullopt;
}

}  // namespace glasswatch::io
