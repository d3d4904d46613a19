import ArgumentParser
import EditContract
import Engine

extension Precision: ExpressibleByArgument {}
