// The daemon's thread model, in one place:
//   main thread  — `main` io_context: every socket, timer, source, sink worker, admin server.
//   store thread — `store` io_context: the SQLite connection and blocking file writes.
// Threads meet only through co_spawn onto the other executor (on_store) — no shared locks.
#pragma once

#include <pthread.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <thread>
#include <type_traits>
#include <vector>

#include "core/base/time.hpp"
#include "io/store/store.hpp"

namespace glasswatch::io {

namespace asio = boost::asio;

// Wall clock in microseconds; one seam so tests and fault injection can shift it.
core::micros wall_now();
// Steady clock in microseconds (arbitrary epoch): durations and schedules that must not follow
// a step of the wall clock.
core::micros steady_micros();

// Owns the two io_contexts and the store thread. finish() joins the store thread and then
// destroys both contexts, which destroys any coroutine frame still suspended in them. It must
// run before the objects those frames reference (runtime, sinks, engine) are destroyed, so the
// owner calls it explicitly at the end of its run (the destructor is a safety net).
class thread_pair {
public:
    thread_pair()
        : main_(std::make_unique<asio::io_context>(1)),
          store_(std::make_unique<asio::io_context>(1)),
          work_(store_->get_executor()),
          thread_([this] {
              // Named for top -H and the benchmarks' per-thread CPU figures.
              ::pthread_setname_np(::pthread_self(), "gw-store");
              store_->run();
          }) {}
    ~thread_pair() { finish(); }
    thread_pair(const thread_pair&) = delete;
    thread_pair& operator=(const thread_pair&) = delete;

    asio::io_context& main() { return *main_; }
    asio::io_context& store_ctx() { return *store_; }
    void run_main() { main_->run(); }
    void finish() {
        if (thread_.joinable()) {
            work_.reset();
            thread_.join();
        }
        store_.reset();
        main_.reset();
    }

private:
    std::unique_ptr<asio::io_context> main_, store_;
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::thread thread_;
};

class runtime {
public:
    runtime(asio::io_context& main, asio::io_context& store_ctx, store& db)
        : main_(main), store_ctx_(store_ctx), db_(db) {}

    asio::io_context& main() noexcept { return main_; }

    // Runs `f(store&)` on the store thread and resumes the caller on its own executor.
    // (Deliberately not a coroutine lambda with captures: GCC 12 miscompiles the destruction of
    // such captures; a function-template coroutine with by-value parameters is safe.)
    template <class F>
    auto on_store(F f) -> asio::awaitable<std::invoke_result_t<F, store&>> {
        using R = std::invoke_result_t<F, store&>;
        return asio::co_spawn(store_ctx_, store_task<R, F>(std::move(f), &db_),
                              asio::use_awaitable);
    }

    // Sink workers park on their own timers and register them here; notify_outbox() wakes
    // them all after a commit so a new alert leaves at once.
    void add_sleeper(asio::steady_timer* t) { sleepers_.push_back(t); }
    void remove_sleeper(asio::steady_timer* t) { std::erase(sleepers_, t); }
    void notify_outbox() {
        for (auto* t : sleepers_)
            t->cancel();
    }

    // Jitter in [0,1) for back-off; main thread only.
    double jitter() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }

private:
    template <class R, class F>
    static asio::awaitable<R> store_task(F f, store* db) {
        if constexpr (std::is_void_v<R>) {
            f(*db);
            co_return;
        } else {
            co_return f(*db);
        }
    }

    asio::io_context& main_;
    asio::io_context& store_ctx_;
    store& db_;                                  // touched only from the store thread
    std::vector<asio::steady_timer*> sleepers_;  // main thread
    std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace glasswatch::io
