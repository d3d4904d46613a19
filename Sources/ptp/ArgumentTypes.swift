import ArgumentParser
import Engine

extension Precision: ExpressibleByArgument {}
