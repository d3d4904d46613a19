import Wire

/// `--coordinator HOST:PORT`, as every cluster command takes it.
enum CoordinatorAddress {
    static func parse(_ address: String) throws -> (host: String, port: Int) {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), port > 0, port < 65536 else {
            throw CommandError("--coordinator: '\(address)' is not HOST:PORT")
        }
        return (String(address[..<colon]), port)
    }
}

extension CoordinatorClient {
    /// A client of the coordinator at `--coordinator`'s HOST:PORT.
    convenience init(address: String, credential: NodeCredential, role: PeerRole) throws {
        let (host, port) = try CoordinatorAddress.parse(address)
        self.init(host: host, port: port, credential: credential, role: role)
    }
}
