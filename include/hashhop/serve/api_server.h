// The HTTP side of `hashhop serve`: cpp-httplib routes for /v1/completions, /v1/chat/completions,
// /v1/models and /health, admission control (503 + Retry-After), a request-size limit (413), JSON errors.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "hashhop/serve/model_backend.h"

namespace httplib {
class Server;
}

namespace hashhop::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;                          // 0: any free port (bind() says which)
  std::size_t max_request_bytes = 64 << 20; // larger bodies get 413
  int threads = 64;                         // connection threads (one per open connection)
  int max_queue = 32;                       // model requests admitted (running + waiting); more get 503
  int retry_after_s = 1;                    // the Retry-After of a 503
  std::string model_name = "hashhop";       // the id in /v1/models; requests naming another model get 404
  bool log_requests = false;                // one stderr line per request
};

class ApiServer {
 public:
  ApiServer(ModelBackend& backend, ServerOptions options);
  ~ApiServer();
  // Binds host:port; returns the port (the free one chosen for port 0). Throws std::runtime_error.
  int bind();
  // Serves until stop(); requests already accepted are answered before it returns.
  void run();
  void stop();  // thread-safe
  bool is_running() const;  // true between run()'s start and stop()

 private:
  void routes();
  ModelBackend& backend_;
  ServerOptions options_;
  std::unique_ptr<httplib::Server> http_;
  std::atomic<int> admitted_{0};
  std::atomic<std::uint64_t> next_id_{1}, served_{0}, rejected_{0};
};

}  // namespace hashhop::serve
