import Foundation

/// diffusers' DPMSolverMultistepScheduler with `algorithm_type` "dpmsolver++" (Lu et al. 2022):
/// a multistep solver over the data prediction, orders 1 to 3, midpoint or Heun second-order
/// updates, plain or Karras sigmas, every timestep spacing, and the final step at sigma zero
/// or sigma_min. Plans are computed as diffusers computes them (numpy doubles for timesteps
/// and Karras sigmas, float32 for sigmas and every update), so runs follow diffusers' closely.
struct DPMSolverMultistepScheduler: Sendable {
    enum SolverType: String, Sendable { case midpoint, heun }
    enum FinalSigma: String, Sendable { case zero, sigmaMinimum = "sigma_min" }

    let schedule: TrainingSchedule
    let predictionType: PredictionType
    let solverOrder: Int
    let solverType: SolverType
    let lowerOrderFinal: Bool
    let eulerAtFinal: Bool
    let karrasSigmas: Bool
    let finalSigma: FinalSigma
    /// The smallest log-SNR a plan may reach (diffusers writes -Infinity for none).
    let lambdaMinClipped: Double
    let timestepSpacing: TimestepSpacing
    let stepsOffset: Int
    private let cosineSchedule: Bool

    init(_ config: ModelConfig) throws {
        let file = config.file.path
        schedule = try TrainingSchedule(config)
        predictionType = try TrainingSchedule.predictionType(config)
        solverOrder = try config.int("solver_order", default: 2)
        guard (1...3).contains(solverOrder) else {
            throw ModelDirectoryError(path: file, problem: "sets solver_order = \(solverOrder)", fix: "use 1, 2 or 3")
        }
        let algorithm = try config.string("algorithm_type", default: "dpmsolver++")
        guard algorithm == "dpmsolver++" || algorithm == "deis" else {
            throw ModelDirectoryError(path: file, problem: "sets algorithm_type '\(algorithm)'",
                                      fix: "use dpmsolver++ (the stochastic and noise-prediction variants are not supported)")
        }
        let solver = try config.string("solver_type", default: "midpoint")
        // diffusers maps the UniPC names onto midpoint.
        solverType = ["logrho", "bh1", "bh2"].contains(solver) ? .midpoint : try {
            guard let type = SolverType(rawValue: solver) else {
                throw ModelDirectoryError(path: file, problem: "sets solver_type '\(solver)'", fix: "use midpoint or heun")
            }
            return type
        }()
        lowerOrderFinal = try config.bool("lower_order_final", default: true)
        eulerAtFinal = try config.bool("euler_at_final", default: false)
        karrasSigmas = try config.bool("use_karras_sigmas", default: false)
        let final = try config.string("final_sigmas_type", default: "zero")
        guard let finalSigma = FinalSigma(rawValue: final) else {
            throw ModelDirectoryError(path: file, problem: "sets final_sigmas_type '\(final)'", fix: "use zero or sigma_min")
        }
        self.finalSigma = finalSigma
        lambdaMinClipped = try config.double("lambda_min_clipped", default: -.infinity)
        timestepSpacing = try TrainingSchedule.spacing(config, default: "linspace")
        stepsOffset = try config.int("steps_offset", default: 0)
        cosineSchedule = try config.string("beta_schedule", default: "linear") == "squaredcos_cap_v2"
        for key in ["use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas", "use_flow_sigmas", "use_dynamic_shifting"]
            where try config.bool(key, default: false) {
            throw ModelDirectoryError(path: file, problem: "sets \(key)", fix: "set it to false (only use_karras_sigmas is supported)")
        }
        if let variance = try config.optionalString("variance_type") {
            throw ModelDirectoryError(path: file, problem: "sets variance_type '\(variance)'", fix: "set it to null (learned variances are not supported)")
        }
    }

    /// The last training timestep a plan may start from (below T when lambda_min_clipped cuts the
    /// noisiest ones), as diffusers' searchsorted over the float32 log-SNRs.
    var lastTimestep: Int {
        let lambdas = schedule.alphasCumulative.map { alpha -> Float in
            Foundation.log(alpha.squareRoot()) - Foundation.log((1 - alpha).squareRoot())
        }
        let threshold = Float(lambdaMinClipped)
        let clipped = lambdas.reversed().prefix { $0 < threshold }.count
        return schedule.trainTimesteps - clipped
    }

    /// The integer timesteps of a `steps`-step plan (nil when the spacing gives another count).
    func integerTimesteps(steps: Int) -> [Int]? {
        let last = lastTimestep
        var timesteps: [Int]
        switch timestepSpacing {
        case .linspace:
            timesteps = NumPy.linspace(0, Double(last - 1), steps + 1).map { Int($0.rounded(.toNearestOrEven)) }.reversed().dropLast()
        case .leading:
            let ratio = last / (steps + 1)
            timesteps = (0...steps).map { $0 * ratio + stepsOffset }.reversed().dropLast()
        case .trailing:
            let ratio = Double(schedule.trainTimesteps) / Double(steps)
            timesteps = NumPy.arange(from: Double(last), downTo: 0, by: -ratio).map { Int($0.rounded(.toNearestOrEven)) - 1 }
        }
        return timesteps.count == steps ? timesteps : nil
    }

    /// Timesteps (for the UNet) and sigmas (one more: the end) of a `steps`-step run.
    func plan(steps: Int) -> (timesteps: [Int], sigmas: [Float])? {
        guard steps >= 1 else { return nil }
        let trainSigmas = schedule.sigmas
        var timesteps: [Int], sigmas: [Float]
        if karrasSigmas {
            // Karras sigmas replace the spaced timesteps (which diffusers computes, then drops).
            let logSigmas = trainSigmas.map { Foundation.log($0) }
            let karras = NumPy.karrasSigmas(minimum: Double(trainSigmas[0]), maximum: Double(trainSigmas[trainSigmas.count - 1]), count: steps)
            timesteps = karras.map { sigma in
                let t = NumPy.timestep(ofSigma: sigma, logSigmas: logSigmas)
                // diffusers rounds except for the cosine schedule, then casts to int64.
                return Int(cosineSchedule ? t : t.rounded(.toNearestOrEven))
            }
            sigmas = karras.map(Float.init)
        } else {
            guard let spaced = integerTimesteps(steps: steps), spaced.allSatisfy({ (0..<schedule.trainTimesteps).contains($0) }) else { return nil }
            timesteps = spaced
            sigmas = timesteps.map { trainSigmas[$0] }
        }
        sigmas.append(finalSigma == .zero ? 0 : trainSigmas[0])
        return (timesteps, sigmas)
    }

    /// Whether a `steps`-step run stays on trained timesteps with exactly `steps` UNet calls.
    func supports(steps: Int) -> Bool {
        guard steps >= 1, steps <= schedule.trainTimesteps else { return false }
        // Karras timesteps are interpolated within the training range, whatever the spacing.
        if karrasSigmas { return true }
        return integerTimesteps(steps: steps)?.allSatisfy { (0..<schedule.trainTimesteps).contains($0) } ?? false
    }

    /// A `steps`-step run (`supports(steps:)` first).
    func start(steps: Int) -> DPMSolverRun {
        guard let plan = plan(steps: steps) else { preconditionFailure("\(steps) steps are not supported; check supports(steps:) first") }
        return DPMSolverRun(scheduler: self, timesteps: plan.timesteps, sigmas: plan.sigmas)
    }
}

/// One DPM-Solver++ run: its plan and the data predictions of the previous steps.
struct DPMSolverRun: SchedulerRun {
    let scheduler: DPMSolverMultistepScheduler
    let integerTimesteps: [Int]
    let sigmas: [Float]
    /// The data predictions (x0) of the last `solverOrder` steps, latest last.
    private var history: [Tensor] = []
    /// How many lower-order steps have been taken (diffusers' `lower_order_nums`).
    private var lowerOrderSteps = 0

    init(scheduler: DPMSolverMultistepScheduler, timesteps: [Int], sigmas: [Float]) {
        self.scheduler = scheduler
        integerTimesteps = timesteps
        self.sigmas = sigmas
    }

    var timesteps: [Float] { integerTimesteps.map(Float.init) }
    var initialNoiseSigma: Float { 1 }

    func scaleInput(_ sample: Tensor, step: Int) -> Tensor { sample }

    /// (alpha_t, sigma_t) of a sigma, and its log-SNR, in float32 as diffusers.
    private static func coefficients(_ sigma: Float) -> (alpha: Float, sigma: Float, lambda: Float) {
        let alpha = 1 / (sigma * sigma + 1).squareRoot()
        let sigmaT = sigma * alpha
        return (alpha, sigmaT, Foundation.log(alpha) - Foundation.log(sigmaT))
    }

    /// The data prediction x0 of a model output at step `step`.
    private func dataPrediction(_ output: Tensor, sample: Tensor, step: Int) -> Tensor {
        let (alpha, sigma, _) = Self.coefficients(sigmas[step])
        switch scheduler.predictionType {
        case .epsilon: return sample.zipElements(output) { ($0 - sigma * $1) / alpha }
        case .velocity: return sample.zipElements(output) { alpha * $0 - sigma * $1 }
        case .sample: return output
        }
    }

    mutating func step(_ output: Tensor, step i: Int, sample: Tensor) -> Tensor {
        let count = integerTimesteps.count, order = scheduler.solverOrder
        let final = i == count - 1 && (scheduler.eulerAtFinal || (scheduler.lowerOrderFinal && count < 15) || scheduler.finalSigma == .zero)
        let secondToLast = i == count - 2 && scheduler.lowerOrderFinal && count < 15
        history.append(dataPrediction(output, sample: sample, step: i))
        if history.count > order { history.removeFirst() }
        let next: Tensor
        if order == 1 || lowerOrderSteps < 1 || final {
            next = firstOrder(sample: sample, step: i)
        } else if order == 2 || lowerOrderSteps < 2 || secondToLast {
            next = secondOrder(sample: sample, step: i)
        } else {
            next = thirdOrder(sample: sample, step: i)
        }
        if lowerOrderSteps < order { lowerOrderSteps += 1 }
        return next
    }

    /// x_t = (sigma_t / sigma_s) x - alpha_t (e^-h - 1) D0: DDIM in these variables.
    private func firstOrder(sample: Tensor, step i: Int) -> Tensor {
        let (alphaT, sigmaT, lambdaT) = Self.coefficients(sigmas[i + 1])
        let (_, sigmaS, lambdaS) = Self.coefficients(sigmas[i])
        let h = lambdaT - lambdaS
        let (a, b) = (sigmaT / sigmaS, alphaT * (Foundation.exp(-h) - 1))
        return sample.zipElements(history[history.count - 1]) { a * $0 - b * $1 }
    }

    private func secondOrder(sample: Tensor, step i: Int) -> Tensor {
        let (alphaT, sigmaT, lambdaT) = Self.coefficients(sigmas[i + 1])
        let (_, sigmaS0, lambdaS0) = Self.coefficients(sigmas[i])
        let (_, _, lambdaS1) = Self.coefficients(sigmas[i - 1])
        let (m0, m1) = (history[history.count - 1], history[history.count - 2])
        let (h, h0) = (lambdaT - lambdaS0, lambdaS0 - lambdaS1)
        let r0 = h0 / h
        let d1Scale = 1 / r0
        let d1 = m0.zipElements(m1) { d1Scale * ($0 - $1) }
        let (a, b) = (sigmaT / sigmaS0, alphaT * (Foundation.exp(-h) - 1))
        let first = sample.zipElements(m0) { a * $0 - b * $1 }
        switch scheduler.solverType {
        case .midpoint:
            let c = 0.5 * b
            return first.zipElements(d1) { $0 - c * $1 }
        case .heun:
            let c = alphaT * ((Foundation.exp(-h) - 1) / h + 1)
            return first.zipElements(d1) { $0 + c * $1 }
        }
    }

    private func thirdOrder(sample: Tensor, step i: Int) -> Tensor {
        let (alphaT, sigmaT, lambdaT) = Self.coefficients(sigmas[i + 1])
        let (_, sigmaS0, lambdaS0) = Self.coefficients(sigmas[i])
        let (_, _, lambdaS1) = Self.coefficients(sigmas[i - 1])
        let (_, _, lambdaS2) = Self.coefficients(sigmas[i - 2])
        let (m0, m1, m2) = (history[history.count - 1], history[history.count - 2], history[history.count - 3])
        let (h, h0, h1) = (lambdaT - lambdaS0, lambdaS0 - lambdaS1, lambdaS1 - lambdaS2)
        let (r0, r1) = (h0 / h, h1 / h)
        let (scale0, scale1) = (1 / r0, 1 / r1)
        let d10 = m0.zipElements(m1) { scale0 * ($0 - $1) }
        let d11 = m1.zipElements(m2) { scale1 * ($0 - $1) }
        let (mix, scale2) = (r0 / (r0 + r1), 1 / (r0 + r1))
        let d1 = d10.zipElements(d11) { $0 + mix * ($0 - $1) }
        let d2 = d10.zipElements(d11) { scale2 * ($0 - $1) }
        let e = Foundation.exp(-h) - 1
        let (a, b) = (sigmaT / sigmaS0, alphaT * e)
        let c = alphaT * (e / h + 1)
        let d = alphaT * ((e + h) / (h * h) - 0.5)
        let first = sample.zipElements(m0) { a * $0 - b * $1 }
        return first.zipElements(d1) { $0 + c * $1 }.zipElements(d2) { $0 - d * $1 }
    }
}
