// Named crash points for the fault tests (tests/e2e/test_crash_cycles.py).
//
// GLASSWATCH_FAILPOINT=name[:nth] makes the nth arrival (default 1) at failpoint("name") raise
// SIGKILL on the whole process: the crash a power cut or the OOM killer causes, at an exact
// place, so a test can prove that place is safe. The variable is read once, before main().
// Unset (production) a failpoint costs one relaxed atomic load and a not-taken branch.
//
// The points (grep for failpoint(" to find them):
//   before_outbox_commit  store::commit, alerts + outbox rows written, before COMMIT
//   mid_checkpoint        store::commit, a source checkpoint written, before COMMIT
//   after_outbox_commit   ingestor::commit, new alerts durable, sink workers not yet woken
//   before_sink_send      delivery worker, the row read from the outbox, before the sink call
//   after_sink_ack        delivery worker, the sink acknowledged, before the row is marked
//   after_sms_intent      Twilio sink, the recipient marked unsure durably, before the POST
//
// Thread model: any thread (the store thread and the main thread both reach points).
#pragma once

#include <atomic>
#include <string_view>

namespace glasswatch::io {

namespace detail {
extern std::atomic<bool> failpoint_armed;
void failpoint_reached(std::string_view name) noexcept;
}  // namespace detail

inline void failpoint(std::string_view name) noexcept {
    if (detail::failpoint_armed.load(std::memory_order_relaxed)) [[unlikely]]
        detail::failpoint_reached(name);
}

}  // namespace glasswatch::io
