#include "io/net/amqp_pump.hpp"

#include <proton/connection.hpp>
#include <proton/error_condition.hpp>
#include <proton/timestamp.hpp>
#include <proton/transport.hpp>

#include <algorithm>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstring>

namespace glasswatch::io {

namespace asio = boost::asio;

namespace {

std::int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

bool is_eof(const boost::system::error_code& ec) {
    return ec == asio::error::eof || ec == asio::error::connection_reset ||
           ec.message().find("stream truncated") != std::string::npos;
}

}  // namespace

amqp_pump::amqp_pump(asio::any_io_executor ex, std::unique_ptr<byte_stream> stream,
                     std::unique_ptr<proton::messaging_handler> handler, std::string container_id)
    : ex_(ex),
      stream_(std::move(stream)),
      handler_(std::move(handler)),
      driver_(container_id),
      tick_timer_(ex) {}

amqp_pump::~amqp_pump() = default;

void amqp_pump::start(std::function<void(const std::string& why)> on_finished) {
    on_finished_ = std::move(on_finished);
    wake();  // the client's AMQP header and open go out now
    read_more();
}

void amqp_pump::read_more() {
    if (done_ || reading_ || frozen_) return;
    reading_ = true;
    auto self = shared_from_this();
    stream_->async_read_some(asio::buffer(rbuf_), [self](const boost::system::error_code& ec,
                                                         std::size_t n) { self->on_read(ec, n); });
}

void amqp_pump::on_read(const boost::system::error_code& ec, std::size_t n) {
    reading_ = false;
    if (done_ || frozen_) return;
    if (ec) {
        if (transport_error_.empty())
            transport_error_ = is_eof(ec) ? "connection closed by the peer" : ec.message();
        // Not read_close(): an unexpected end is a transport error the handler must see.
        driver_.disconnected(proton::error_condition("amqp:connection:framing-error",
                                                     "transport: " + transport_error_));
        wake();
        return;
    }
    bytes_in_ += n;
    std::size_t off = 0;
    while (off < n) {
        proton::io::mutable_buffer rb = driver_.read_buffer();
        if (rb.size == 0) {
            driver_.dispatch();  // frees read space
            rb = driver_.read_buffer();
            if (rb.size == 0) break;  // the engine no longer reads: the rest is moot
        }
        const std::size_t k = std::min(rb.size, n - off);
        std::memcpy(rb.data, rbuf_.data() + off, k);
        driver_.read_done(k);
        off += k;
    }
    wake();
    read_more();
}

void amqp_pump::flush() {
    if (done_ || writing_ || frozen_) return;
    proton::io::const_buffer b = driver_.write_buffer();
    if (b.size == 0) return;
    wbuf_.assign(b.data, b.size);
    writing_ = true;
    auto self = shared_from_this();
    stream_->async_write(
        asio::buffer(wbuf_), [self](const boost::system::error_code& ec, std::size_t n) {
            self->writing_ = false;
            if (self->done_) return;
            if (ec) {
                if (self->transport_error_.empty()) self->transport_error_ = ec.message();
                self->driver_.disconnected(proton::error_condition(
                    "amqp:connection:framing-error", "transport: " + self->transport_error_));
            } else {
                self->bytes_out_ += n;
                // A read error or abort() while this write was in flight calls disconnected(),
                // which closes the transport head and drops its pending output; telling the
                // engine about bytes it no longer holds trips Proton's assertion.
                if (self->driver_.write_buffer().size >= n) self->driver_.write_done(n);
                if (self->on_written_) self->on_written_();
            }
            self->wake();
        });
}

void amqp_pump::wake() {
    if (done_ || in_wake_ || frozen_) return;
    in_wake_ = true;
    driver_.tick(proton::timestamp(steady_ms()));
    const bool alive = driver_.dispatch();
    flush();
    in_wake_ = false;
    if (!alive && !writing_) {
        finish(transport_error_.empty() ? "connection closed" : transport_error_);
        return;
    }
    arm_tick();
}

void amqp_pump::arm_tick() {
    // tick() returns when it wants to be called again (heartbeats, idle-timeout checks).
    const proton::timestamp next = driver_.tick(proton::timestamp(steady_ms()));
    if (next.milliseconds() == 0) return;
    const auto delay =
        std::chrono::milliseconds(std::max<std::int64_t>(next.milliseconds() - steady_ms(), 1));
    tick_timer_.expires_after(delay);
    auto self = shared_from_this();
    tick_timer_.async_wait([self](const boost::system::error_code& ec) {
        if (!ec) self->wake();
    });
}

void amqp_pump::abort(const std::string& why) {
    if (done_) return;
    frozen_ = false;
    if (transport_error_.empty()) transport_error_ = why;
    driver_.disconnected(proton::error_condition("amqp:connection:framing-error", why));
    stream_->close();
    wake();
    if (!done_) finish(why);
}

void amqp_pump::finish(const std::string& why) {
    if (done_) return;
    done_ = true;
    tick_timer_.cancel();
    stream_->close();
    if (on_finished_) {
        auto cb = std::move(on_finished_);
        auto self = shared_from_this();
        asio::post(ex_, [self, cb = std::move(cb), why] { cb(why); });
    }
}

}  // namespace glasswatch::io
