// Noticing that an HTTP client went away while its request runs: the connection's socket is found
// once by its address and ports, then polled for a hang-up.
#pragma once

#include <string>

namespace moerun::server {

// Watches the socket of one accepted connection (it must stay open while the probe is used).
class ConnectionProbe {
 public:
  // Finds the socket whose local port is `local_port` and whose peer is remote_addr:remote_port;
  // when none is found, peer_closed() is always false.
  ConnectionProbe(const std::string& remote_addr, int remote_port, int local_port);
  // True once the peer has closed or reset the connection.
  bool peer_closed() const;
  // True when the socket was found.
  bool found() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace moerun::server
