// warren: the command-line client of a Warren server. See README.md or
// `warren --help`.
#include "clients/cli/cli.h"
#include "clients/cli/stream.h"

int main(int argc, char** argv) {
  // First, before gRPC starts any thread: see StopSignals.
  warren::cli::StopSignals::Install();
  return warren::cli::Main(argc, argv);
}
