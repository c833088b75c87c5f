#include "core/protocol/eventhub_session.hpp"

#include <algorithm>
#include <utility>

#include "core/base/backoff.hpp"

namespace glasswatch::core {

namespace {

using std::chrono::milliseconds;

micros to_micros(milliseconds d) {
    return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

// "name: description" (the description cut at 200 bytes: it is the peer's text).
std::string condition_text(const amqp_condition& e) {
    if (!e) return {};
    std::string t = e.name;
    if (!e.description.empty()) t += ": " + e.description.substr(0, 200);
    return t;
}

std::string status_text(const eventhub_reply& r) {
    return "status " + std::to_string(r.status) + " " + r.description.substr(0, 120);
}

}  // namespace

std::string_view to_string(connection_phase p) noexcept {
    switch (p) {
        case connection_phase::idle:
            return "idle";
        case connection_phase::connecting:
            return "connecting";
        case connection_phase::tls:
            return "tls";
        case connection_phase::ws_upgrade:
            return "ws_upgrade";
        case connection_phase::amqp_open:
            return "amqp_open";
        case connection_phase::cbs_auth:
            return "cbs_auth";
        case connection_phase::management:
            return "management";
        case connection_phase::receivers:
            return "receivers";
        case connection_phase::running:
            return "running";
        case connection_phase::backoff:
            return "backoff";
        case connection_phase::stopped:
            return "stopped";
    }
    return "?";
}

eventhub_session::eventhub_session(eventhub_session_config cfg, std::function<double()> jitter)
    : cfg_(std::move(cfg)), jitter_(std::move(jitter)) {}

// ---- across connections -----------------------------------------------------------------------

void eventhub_session::on_committed(const std::string& key, const eventhub_checkpoint& cp) {
    committed_[key] = cp;
}

std::int64_t eventhub_session::committed_sequence(const std::string& key) const {
    auto it = committed_.find(key);
    return it == committed_.end() ? -1 : it->second.sequence_number;
}

eventhub_session::reconnect eventhub_session::on_connection_end() {
    ++counters_.failures;
    ++failures_in_row_;
    reconnect r;
    if (failure_) {
        r.cls = failure_->cls;
        r.text = failure_->text;
    }
    backoff_policy bp;
    bp.initial = cfg_.backoff_initial;
    bp.max = cfg_.backoff_max;
    r.delay = backoff_delay(bp, std::max(failures_in_row_, 1), jitter_());
    if (failure_ && r.cls == amqp_error_class::busy) r.delay = std::max(r.delay, cfg_.busy_min);
    // An operator must act (auth) or another owner holds the hub: no point in asking often.
    if (failure_ && (r.cls == amqp_error_class::fatal || r.cls == amqp_error_class::stolen ||
                     r.cls == amqp_error_class::unauthorized))
        r.delay = std::max(r.delay, std::min(cfg_.long_backoff, cfg_.backoff_max * 4));
    phase_ = connection_phase::backoff;
    phase_deadline_ = never;
    return r;
}

void eventhub_session::on_stopped() {
    phase_ = connection_phase::stopped;
    phase_deadline_ = never;
}

// ---- one connection ---------------------------------------------------------------------------

void eventhub_session::set_phase(connection_phase p, eventhub_clock now) {
    if (phase_ == p) return;
    phase_ = p;
    // Every phase until running has its own deadline, counted from when it began.
    phase_deadline_ = now.steady + to_micros(cfg_.phase_timeout);
}

void eventhub_session::fail_into(actions& out, amqp_error_class cls, std::string text) {
    if (failure_) return;  // the first cause of a connection's end is the one that counts
    failure_ = fail_connection{cls, std::move(text)};
    out.push_back(*failure_);
}

eventhub_session::actions eventhub_session::fail(amqp_error_class cls, const std::string& text) {
    actions out;
    fail_into(out, cls, text);
    return out;
}

void eventhub_session::begin_connection(eventhub_clock now) {
    failure_.reset();
    inflight_.clear();
    next_id_ = 1;
    tokens_waiting_ = hubs_waiting_ = 0;
    tokens_sent_at_ = 0;
    renew_at_ = manage_at_ = never;
    hub_partitions_.clear();
    parts_.clear();
    running_ = false;
    sasl_offered_.reset();
    sasl_checked_ = false;
    set_phase(connection_phase::connecting, now);
}

void eventhub_session::on_transport_phase(connection_phase p, eventhub_clock now) {
    set_phase(p, now);
}

eventhub_session::actions eventhub_session::on_dial_failed(const std::string& text,
                                                           bool timed_out) {
    if (timed_out) ++counters_.phase_timeouts;
    return fail(amqp_error_class::transient, text);
}

micros eventhub_session::token_period() const {
    // Renewed at 90% of the lifetime, counted from a whole second before the token was made
    // (its expiry is in whole seconds): a 2 s token renews after 0.9 s, not after it expired.
    const auto period = std::chrono::duration_cast<std::chrono::microseconds>(
                            cfg_.token_ttl - std::chrono::seconds(1)) *
                        9 / 10;
    return std::max<micros>(period.count(), 500000);
}

void eventhub_session::on_amqp_start(eventhub_clock now) {
    set_phase(connection_phase::amqp_open, now);
    // SASL PLAIN has no token to renew.
    renew_at_ = cfg_.sasl_plain ? never : now.steady + token_period();
    manage_at_ = now.steady + to_micros(cfg_.management_interval);
}

std::string eventhub_session::sasl_words() const {
    std::string list;
    if (sasl_offered_)
        for (const auto& m : *sasl_offered_)
            list += (list.empty() ? "" : " ") + m;
    const std::string ours = cfg_.sasl_plain ? "PLAIN" : "ANONYMOUS";
    if (!sasl_offered_)
        return "; SASL: the server sent no mechanisms (glasswatch uses " + ours + ")";
    return "; SASL: the server offers [" + list + "], glasswatch uses " + ours +
           " (sources.eventhub.sasl = \"" + (cfg_.sasl_plain ? "plain" : "anonymous") + "\")";
}

eventhub_session::actions eventhub_session::on_sasl_offered(
    const std::optional<std::vector<std::string>>& offered) {
    actions out;
    sasl_offered_ = offered;
    if (!offered || sasl_checked_) return out;
    sasl_checked_ = true;
    // A server that does not offer our mechanism is an error at once (Proton would wait
    // without a word).
    const std::string ours = cfg_.sasl_plain ? "PLAIN" : "ANONYMOUS";
    if (std::find(offered->begin(), offered->end(), ours) == offered->end())
        fail_into(out, amqp_error_class::fatal, "SASL cannot start" + sasl_words());
    return out;
}

eventhub_session::request_id eventhub_session::next_request(request r) {
    const request_id id = next_id_++;
    inflight_[id] = std::move(r);
    return id;
}

void eventhub_session::open_management(actions& out) {
    out.push_back(open_request_link{request_node::management, "$management", "glasswatch-mgmt"});
}

void eventhub_session::put_tokens(actions& out, eventhub_clock now) {
    if (cfg_.sasl_plain || tokens_waiting_ > 0) return;  // one put per hub in flight
    const std::int64_t issued = now.wall / 1000000;
    const std::int64_t expiry = issued + cfg_.token_ttl.count();
    for (const auto& hub : cfg_.hubs) {
        ++tokens_waiting_;
        tokens_sent_at_ = now.steady;
        ++counters_.token_puts;
        const request_id id = next_request({request::kind::token, hub.name, {}});
        out.push_back(put_token{id, hub.name, hub.audience, expiry});
    }
}

void eventhub_session::read_hubs(actions& out) {
    for (const auto& hub : cfg_.hubs) {
        ++hubs_waiting_;
        const request_id id = next_request({request::kind::hub, hub.name, {}});
        out.push_back(read_hub{id, hub.name});
    }
}

eventhub_session::actions eventhub_session::on_connection_open(eventhub_clock now) {
    actions out;
    if (cfg_.sasl_plain) {
        // SASL PLAIN authorised the whole connection: no CBS.
        set_phase(connection_phase::management, now);
        open_management(out);
        read_hubs(out);
    } else {
        set_phase(connection_phase::cbs_auth, now);
        out.push_back(open_request_link{request_node::cbs, "$cbs", "glasswatch-cbs"});
        put_tokens(out, now);
    }
    return out;
}

// A partition (re)starts: runtime info first; attach() follows the answer.
void eventhub_session::ask_info(actions& out, partition_link& pl, eventhub_clock now) {
    pl.state = link_state::info;
    pl.asked_at = now.steady;
    const request_id id = next_request({request::kind::partition, pl.hub, pl.id});
    out.push_back(read_partition{id, pl.hub, pl.id});
}

void eventhub_session::start_partitions(actions& out, eventhub_clock now) {
    set_phase(connection_phase::receivers, now);
    for (const auto& [hub, ids] : hub_partitions_) {
        for (const auto& p : ids) {
            const std::string key = eventhub_checkpoint_key(hub, p);
            partition_link& pl = parts_[key];
            pl.key = key;
            pl.hub = hub;
            pl.id = p;
            if (auto it = committed_.find(key); it != committed_.end()) pl.after = it->second;
            out.push_back(partition_started{key, hub, p});
            ask_info(out, pl, now);
        }
    }
    if (parts_.empty())
        fail_into(out, amqp_error_class::fatal, "the event hub reported no partitions");
}

void eventhub_session::attach(actions& out, partition_link& pl, eventhub_clock now) {
    attach_plan plan = plan_attach(pl.after, pl.info, now.wall, cfg_.start_lookback);
    if (plan.lost) {
        out.push_back(events_lost{pl.hub, pl.id, *plan.lost});
        if (plan.lost->why == sequence_gap::cause::reset) {
            pl.restart_at = plan.lost->resumed_at;
            pl.after.reset();
        } else {
            pl.after = eventhub_checkpoint{plan.expect_next - 1, "", 0};
        }
    } else if (pl.restart_at && !pl.after) {
        // Reading restarted after a reset and nothing arrived yet: from where it restarted,
        // not from the lookback.
        plan.from = start_position{};
        plan.from.what = start_position::kind::sequence_number;
        plan.from.sequence_number = *pl.restart_at;
        plan.from.inclusive = true;
        plan.expect_next = *pl.restart_at;
        plan.last_read_ms = 0;
    }
    pl.expect_next = plan.expect_next;
    pl.last_read_ms = plan.last_read_ms;
    attach_partition a;
    a.link = next_link_++;
    a.key = pl.key;
    a.hub = pl.hub;
    a.partition = pl.id;
    a.address = partition_address(pl.hub, cfg_.consumer_group, pl.id);
    // A re-attach gets a link name of its own (the old link may still be closing).
    a.name = pl.attaches == 0 ? a.address : a.address + "#" + std::to_string(pl.attaches);
    a.from = plan.from;
    a.selector = selector_expression(plan.from);
    a.epoch = cfg_.epoch;
    a.max_message_size = cfg_.max_message_size;
    ++pl.attaches;
    pl.link = a.link;
    pl.state = link_state::attaching;
    pl.asked_at = now.steady;
    out.push_back(std::move(a));
}

eventhub_session::partition_link* eventhub_session::part_of(link_id link) {
    if (link == 0) return nullptr;
    for (auto& [key, pl] : parts_)
        if (pl.link == link) return &pl;
    return nullptr;
}

// Leaves the phase `receivers` once every partition's first attach was answered: a partition
// another owner holds must not keep the others from running.
void eventhub_session::check_running(actions& out, eventhub_clock now) {
    if (running_) return;
    for (const auto& [key, pl] : parts_)
        if (!pl.tried) return;
    running_ = true;
    set_phase(connection_phase::running, now);
    ++counters_.connects;
    failures_in_row_ = 0;
    std::size_t up = 0;
    for (const auto& [key, pl] : parts_)
        up += pl.state == link_state::receiving ? 1 : 0;
    out.push_back(now_running{up, parts_.size(), hub_partitions_.size()});
}

std::chrono::milliseconds eventhub_session::partition_backoff(amqp_error_class cls,
                                                              int failures_in_row) {
    backoff_policy bp;
    bp.initial = cfg_.backoff_initial;
    bp.max = std::min(cfg_.partition_backoff_max, cfg_.backoff_max);
    auto d = backoff_delay(bp, std::max(failures_in_row, 1), jitter_());
    if (cls == amqp_error_class::busy) d = std::max(d, cfg_.busy_min);
    if (cls == amqp_error_class::fatal) d = std::max(d, bp.max);
    return d;
}

// A partition link failed (refused attach, detach, READ failure): this partition only.
void eventhub_session::partition_failed_into(actions& out, partition_link& pl, amqp_error_class cls,
                                             const std::string& why, eventhub_clock now) {
    stuck_.erase(pl.key);  // its failure is reported instead; the stuck clock starts again
    pl.tried = true;
    pl.last_class = cls;
    pl.last_error = why;
    ++pl.failures_in_row;
    if (pl.down_since == 0) pl.down_since = now.wall;
    if (cls == amqp_error_class::unauthorized && !cfg_.sasl_plain) {
        // The token expired or was revoked: put a new one, then attach again at once.
        pl.state = link_state::token;
        if (pl.failures_in_row <= 1) {
            out.push_back(partition_failed{pl.hub, pl.id, cls, why, std::nullopt});
            put_tokens(out, now);
            check_running(out, now);
            return;
        }
        // Refused again right after a new token: back off like any other failure.
    }
    const auto delay = partition_backoff(cls, pl.failures_in_row);
    pl.state = link_state::backoff;
    pl.retry_at = now.steady + to_micros(delay);
    out.push_back(partition_failed{pl.hub, pl.id, cls, why, delay});
    check_running(out, now);
}

void eventhub_session::partition_info_into(actions& out, partition_link& pl,
                                           std::int64_t last_enqueued, eventhub_clock now) {
    out.push_back(partition_read{pl.hub, pl.id, last_enqueued});
    auto it = stuck_.find(pl.key);
    if (it == stuck_.end())
        it = stuck_.emplace(pl.key, stuck_detector(to_micros(cfg_.stuck_after))).first;
    // Not attached (held by another owner, backing off, not yet attached): that is reported as
    // what it is; the stuck rule looks at attached partitions only.
    if (pl.state != link_state::receiving) return;
    const bool was = it->second.stuck();
    const std::int64_t committed = committed_sequence(pl.key);
    const bool stuck = it->second.observe(committed, last_enqueued, now.wall);
    if (stuck && !was) {
        out.push_back(partition_stuck{pl.hub, pl.id, committed, last_enqueued});
        // Once per episode, reconnect: fresh links get fresh credit, which is all a consumer
        // can do about a broker that stopped honouring the credit it holds (a lost flow).
        fail_into(
            out, amqp_error_class::transient,
            "partition " + pl.id + " of " + pl.hub + " is stuck; reconnecting to attach it again");
    }
    if (!stuck && was) out.push_back(partition_moves{pl.hub, pl.id});
}

eventhub_session::actions eventhub_session::on_reply(request_id id, const eventhub_reply& reply,
                                                     eventhub_clock now) {
    actions out;
    auto it = inflight_.find(id);
    if (it == inflight_.end()) return out;  // not an answer to anything we asked
    const request what = std::move(it->second);
    inflight_.erase(it);
    const bool ok = reply.status >= 200 && reply.status < 300;

    if (what.what == request::kind::token) {
        if (tokens_waiting_ > 0) --tokens_waiting_;
        if (!ok) {
            ++counters_.auth_refused;
            fail_into(out, amqp_error_class::fatal,
                      "put-token for " + what.hub + " refused: " + status_text(reply));
            return out;
        }
        if (tokens_waiting_ != 0) return out;
        if (phase_ == connection_phase::cbs_auth) {
            set_phase(connection_phase::management, now);
            open_management(out);
            read_hubs(out);
            return out;
        }
        // A renewed token: the partitions that waited for it start again.
        for (auto& [key, pl] : parts_)
            if (pl.state == link_state::token) ask_info(out, pl, now);
        return out;
    }

    if (what.what == request::kind::partition) {
        auto pit = parts_.find(eventhub_checkpoint_key(what.hub, what.partition));
        if (pit == parts_.end()) return out;
        partition_link& pl = pit->second;
        if (!ok || !reply.body) {
            if (pl.state != link_state::info) return out;  // a periodic READ: next time
            const auto cls =
                reply.status == 401 ? amqp_error_class::unauthorized : amqp_error_class::transient;
            partition_failed_into(out, pl, cls,
                                  "$management READ of the partition failed: " + status_text(reply),
                                  now);
            return out;
        }
        pl.info = reply.body->partition;
        partition_info_into(out, pl, pl.info->last_sequence, now);
        if (pl.state == link_state::info) attach(out, pl, now);
        return out;
    }

    // The hub's READ: its partition ids. A refusal an operator must fix (no right, no such
    // hub) takes the long back-off.
    if (!ok) {
        fail_into(out,
                  reply.status == 401 || reply.status == 404 ? amqp_error_class::fatal
                                                             : amqp_error_class::transient,
                  "$management READ (hub:" + what.hub + ") failed: " + status_text(reply));
        return out;
    }
    if (!reply.body) {
        fail_into(out, amqp_error_class::transient, "$management answered with an unreadable body");
        return out;
    }
    hub_partitions_[what.hub] = reply.body->partition_ids;
    if (hubs_waiting_ > 0 && --hubs_waiting_ == 0 && phase_ == connection_phase::management)
        start_partitions(out, now);
    return out;
}

eventhub_session::actions eventhub_session::on_partition_attached(link_id link,
                                                                  eventhub_clock now) {
    actions out;
    partition_link* pl = part_of(link);
    if (!pl) return out;
    out.push_back(give_credit{link, cfg_.credit});
    const bool again = pl->failures_in_row > 0;
    if (again) ++counters_.reattaches;
    out.push_back(partition_attached{pl->hub, pl->id, again});
    pl->state = link_state::receiving;
    pl->tried = true;
    pl->failures_in_row = 0;
    pl->down_since = 0;
    pl->last_error.clear();
    check_running(out, now);
    return out;
}

eventhub_session::delivery_note eventhub_session::on_delivery(link_id link,
                                                              const message_position& pos) {
    delivery_note note;
    partition_link* pl = part_of(link);
    if (!pl) return note;
    note.partition = pl;
    // The gap check and the re-attach position, for every delivery (refused ones too).
    note.gap = observe_delivery(pl->expect_next, pl->last_read_ms, pos);
    if (!usable(pos)) return note;
    pl->restart_at.reset();
    if (!pl->after) pl->after = eventhub_checkpoint{};
    advance(*pl->after, pos);
    return note;
}

eventhub_session::actions eventhub_session::on_link_closed(link_id link, std::string_view label,
                                                           const amqp_condition& error,
                                                           eventhub_clock now) {
    actions out;
    const auto cls = error ? classify_amqp_error(error.name) : amqp_error_class::transient;
    if (cls == amqp_error_class::stolen) ++counters_.stolen;
    if (cls == amqp_error_class::busy) ++counters_.busy;
    if (!error || error.name == "amqp:link:detach-forced") ++counters_.detached;
    if (partition_link* pl = part_of(link); pl != nullptr) {
        // A partition link: this partition only.
        ++counters_.partition_failures;
        std::string why;
        if (cls == amqp_error_class::stolen) {
            const auto other = stolen_by_epoch(error.description);
            why = "held by another receiver" +
                  (other ? " (epoch " + std::to_string(*other) + ")" : std::string()) + ": " +
                  condition_text(error);
        } else {
            why = error ? "detached: " + condition_text(error) : "detached by the service";
        }
        partition_failed_into(out, *pl, cls, why, now);
        return out;
    }
    if (error)
        fail_into(out, cls, std::string(label) + " detached: " + condition_text(error));
    else
        fail_into(out, amqp_error_class::transient,
                  std::string(label) + " detached by the service");
    return out;
}

eventhub_session::actions eventhub_session::on_connection_error(const amqp_condition& error) {
    return fail(classify_amqp_error(error.name),
                "connection closed by the service: " + condition_text(error));
}

eventhub_session::actions eventhub_session::on_connection_closed() {
    return fail(amqp_error_class::transient, "connection closed by the service");
}

eventhub_session::actions eventhub_session::on_transport_error(const amqp_condition& error) {
    std::string text = condition_text(error);
    constexpr std::string_view pump_prefix = "amqp:connection:framing-error: transport: ";
    if (text.rfind(pump_prefix, 0) == 0) text = text.substr(pump_prefix.size());
    if (text.empty()) text = "transport failed";
    if (phase_ == connection_phase::amqp_open) text += sasl_words();
    // SASL refused the credentials: an operator must act (the long back-off), unlike a
    // transport that merely failed.
    const bool refused = error.name == "amqp:unauthorized-access";
    if (refused) ++counters_.auth_refused;
    return fail(refused ? amqp_error_class::fatal : amqp_error_class::transient, text);
}

eventhub_session::actions eventhub_session::on_error(const amqp_condition& error) {
    return fail(amqp_error_class::transient, condition_text(error));
}

// Partitions whose back-off is over start again (with a READ); a READ or an attach left
// unanswered for phase_timeout fails its partition.
void eventhub_session::retry_due(actions& out, eventhub_clock now) {
    const micros limit = to_micros(cfg_.phase_timeout);
    for (auto& [key, pl] : parts_) {
        if (pl.state == link_state::info || pl.state == link_state::attaching) {
            if (now.steady - pl.asked_at < limit) continue;
            const bool attaching = pl.state == link_state::attaching;
            if (attaching) out.push_back(close_link{pl.link});
            partition_failed_into(out, pl, amqp_error_class::transient,
                                  std::string(attaching ? "attach" : "$management READ") +
                                      " not answered within " +
                                      std::to_string(cfg_.phase_timeout.count()) + " ms",
                                  now);
        }
        if (pl.state == link_state::backoff && pl.retry_at <= now.steady) ask_info(out, pl, now);
    }
}

eventhub_session::actions eventhub_session::on_tick(eventhub_clock now) {
    actions out;
    if (failure_) return out;
    const micros limit = to_micros(cfg_.phase_timeout);
    if (phase_ != connection_phase::running) {
        if (now.steady >= phase_deadline_) {
            ++counters_.phase_timeouts;
            fail_into(out, amqp_error_class::transient,
                      "no progress in phase " + std::string(to_string(phase_)) + " within " +
                          std::to_string(cfg_.phase_timeout.count()) + " ms" +
                          (phase_ == connection_phase::amqp_open ? sasl_words() : std::string()));
        }
        return out;
    }
    retry_due(out, now);
    if (tokens_waiting_ > 0 && now.steady - tokens_sent_at_ >= limit) {
        fail_into(
            out, amqp_error_class::transient,
            "put-token not answered within " + std::to_string(cfg_.phase_timeout.count()) + " ms");
        return out;
    }
    // Timed duties come before the batches in the driver's loop: a backlog that never lets the
    // batches run dry must not starve the token renewal.
    if (now.steady >= renew_at_) {
        put_tokens(out, now);  // the same links, before the old token expires
        renew_at_ = now.steady + token_period();
    }
    if (now.steady >= manage_at_) {
        // The periodic READ of every partition (the stuck rule, the lag).
        for (const auto& [key, pl] : parts_) {
            const request_id id = next_request({request::kind::partition, pl.hub, pl.id});
            out.push_back(read_partition{id, pl.hub, pl.id});
        }
        manage_at_ = now.steady + to_micros(cfg_.management_interval);
    }
    return out;
}

micros eventhub_session::next_wake() const {
    if (phase_ != connection_phase::running) return phase_deadline_;
    const micros limit = to_micros(cfg_.phase_timeout);
    micros next = std::min(renew_at_, manage_at_);
    for (const auto& [key, pl] : parts_) {
        if (pl.state == link_state::info || pl.state == link_state::attaching)
            next = std::min(next, pl.asked_at + limit);
        if (pl.state == link_state::backoff) next = std::min(next, pl.retry_at);
    }
    if (tokens_waiting_ > 0) next = std::min(next, tokens_sent_at_ + limit);
    return next;
}

bool eventhub_session::returns_credit(const std::string& key, link_id link) const {
    auto it = parts_.find(key);
    return it != parts_.end() && it->second.link == link &&
           it->second.state == link_state::receiving;
}

std::optional<eventhub_session::outage> eventhub_session::partition_outage() const {
    // A partition counts as failing once it is held by another owner, refused for a reason an
    // operator must fix, or its first re-attach failed too (an idle detach that re-attaches at
    // once is not an outage). The source fails since the earliest such partition went down.
    std::optional<outage> o;
    for (const auto& [key, pl] : parts_) {
        if (pl.state == link_state::receiving || pl.down_since == 0) continue;
        const bool counts = pl.failures_in_row >= 2 || pl.last_class == amqp_error_class::stolen ||
                            pl.last_class == amqp_error_class::fatal;
        if (!counts) continue;
        if (!o || pl.down_since < o->since)
            o = outage{pl.down_since, "partition " + pl.id + " of " + pl.hub + " not read since " +
                                          format_iso8601(pl.down_since, false) + ": " +
                                          pl.last_error};
    }
    return o;
}

}  // namespace glasswatch::core
