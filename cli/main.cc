#include "cli/commands.h"

int main(int argc, char** argv) { return itinera::cli::Main(argc, argv); }
