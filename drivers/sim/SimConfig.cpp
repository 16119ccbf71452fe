#include "drivers/sim/SimConfig.h"

#include "core/Error.h"
#include "drivers/sim/SimRandom.h"

namespace drp {

std::uint64_t SimConfig::skySeed() const { return mixSeed(seed, 1); }
std::uint64_t SimConfig::planSeed() const { return mixSeed(seed, 2); }
std::shared_ptr<const Camera> SimConfig::makeCamera() const {
    return makeLsstLikeCamera(camera)->withRadialDistortion(observing.distortionCoeffPerDeg2);
}
std::uint64_t SimConfig::instrumentSeed() const { return mixSeed(seed, 3); }

void SimConfig::validate() const {
    if (instrument.empty()) throw ConfigError("sim: instrument needs a name");
    if (!(psfBeta > 1.0 && psfBeta <= 20.0)) throw ConfigError("sim: psf_beta must be in (1, 20]");
    for (int n : {biasExposures, darkExposures, flatExposuresPerBand})
        if (n < 0 || n > 1000) throw ConfigError("sim: calibration exposure counts must be in [0, 1000]");
    if (htmLevel < 0 || htmLevel > 20) throw ConfigError("sim: htm_level must be in [0, 20]");
    if (!(refcatPositionErrorMas >= 0 && refcatPmErrorMasPerYr >= 0 && refcatFluxErrorFraction >= 0))
        throw ConfigError("sim: reference-catalog errors must be >= 0");
    camera.validate();
    instrumentModel.validate();
    sky.validate();
    observing.validate();
    render.validate();
}

void SimConfig::bind(ConfigBinder& b) {
    b.bind("instrument", instrument, "instrument name in data IDs and headers");
    b.bind("seed", seed, "master seed: sky, plan and instrument seeds derive from it");
    b.bind("psf_beta", psfBeta, "Moffat beta of the PSF, (1, 20]");
    b.bind("calib.bias_exposures", biasExposures, "raw bias frames per detector");
    b.bind("calib.dark_exposures", darkExposures, "raw dark frames per detector");
    b.bind("calib.flat_exposures_per_band", flatExposuresPerBand, "raw flats per detector and band");
    b.bind("calib.write_flat_truth", writeFlatTruth, "write the true flat of each detector and band");
    b.bind("refcat.htm_level", htmLevel, "HTM level of the reference-catalog shards");
    b.bind("refcat.mag_limit", refcatMagLimit, "faintest r magnitude of reference stars");
    b.bind("refcat.position_error_mas", refcatPositionErrorMas, "position error at r=17, mas (x 10^(0.2 (r-17)))");
    b.bind("refcat.pm_error_mas_per_yr", refcatPmErrorMasPerYr, "proper-motion error at r=17, mas/yr");
    b.bind("refcat.flux_error_fraction", refcatFluxErrorFraction, "fractional flux error at r=17");
    b.bind("render.oversample", render.oversample, "galaxy rendering: 0 = exact in Fourier space; m >= 1 = real-space grid oversampled m times (cross-check)");
    b.bind("render.max_stamp_half_width", render.maxStampHalfWidth, "largest stamp half-width, pixels");
    b.bind("instrument.bias_level_adu", instrumentModel.biasLevelAdu, "mean bias (pedestal) level, ADU; (0, 30000]");
    b.bind("instrument.bias_level_spread_adu", instrumentModel.biasLevelSpreadAdu, "half-width of the uniform per-amplifier spread of the bias level, ADU; >= 0");
    b.bind("instrument.bias_drift_adu", instrumentModel.biasDriftAdu, "rms per-exposure, per-amplifier shift of the bias level, ADU; >= 0");
    b.bind("instrument.bias_row_noise_adu", instrumentModel.biasRowNoiseAdu, "rms per-exposure random offset of each raw row (data, prescan and overscan alike), ADU; >= 0");
    b.bind("instrument.bias_row_pattern_adu", instrumentModel.biasRowPatternAdu, "rms of the fixed (per detector and amplifier) offset of each raw row, ADU; >= 0");
    b.bind("instrument.bias_column_pattern_adu", instrumentModel.biasColumnPatternAdu, "rms of the fixed offset of each raw data column (also in the parallel overscan, not in prescan/serial overscan), ADU; >= 0");
    b.bind("instrument.dark_current_e_per_s", instrumentModel.darkCurrentEPerS, "dark current of normal pixels, e-/s/pixel; >= 0");
    b.bind("instrument.hot_pixel_fraction", instrumentModel.hotPixelFraction, "expected fraction of hot pixels; [0, 0.1]");
    b.bind("instrument.hot_pixel_min_factor", instrumentModel.hotPixelMinFactor, "hot-pixel dark current, lowest multiple of darkCurrentEPerS (log-uniform); >= 1");
    b.bind("instrument.hot_pixel_max_factor", instrumentModel.hotPixelMaxFactor, "hot-pixel dark current, highest multiple of darkCurrentEPerS; >= hotPixelMinFactor");
    b.bind("instrument.bad_columns_per_detector", instrumentModel.badColumnsPerDetector, "number of bad columns per detector (exactly); [0, detector width]");
    b.bind("instrument.bad_column_dead_fraction", instrumentModel.badColumnDeadFraction, "probability that a bad column is dead (response 0) rather than low (response 0.1-0.6); [0, 1]");
    b.bind("instrument.vignetting_amplitude", instrumentModel.vignettingAmplitude, "fraction of the light lost at the focal-plane edge radius (loss grows as r^2); [0, 1)");
    b.bind("instrument.pixel_response_sigma", instrumentModel.pixelResponseSigma, "rms pixel-to-pixel response variation (PRNU); [0, 0.2]");
    b.bind("instrument.amp_pattern_amplitude", instrumentModel.ampPatternAmplitude, "largest deviation of the smooth linear response gradient across each amplifier (random direction per amplifier); [0, 0.5)");
    b.bind("instrument.band_gradient_amplitude", instrumentModel.bandGradientAmplitude, "scale of the band-dependent linear gradient across the detector (random direction per band; deviation <= 0.71 x this at the corners); [0, 0.5)");
    b.bind("instrument.band_pixel_response_fraction", instrumentModel.bandPixelResponseFraction, "fraction (in amplitude) of the pixel-response pattern that differs between bands; [0, 1]");
    b.bind("instrument.nonlinearity_coeff", instrumentModel.nonlinearityCoeff, "c of measured = x + c x^2 (x in e-), 1/e-; -1e-7 gives -1% at 100000 e-; |c| x fullWell <= 0.25");
    b.bind("instrument.nonlinearity_spread", instrumentModel.nonlinearitySpread, "fractional half-width of the uniform per-amplifier spread of c; [0, 1)");
    b.bind("instrument.crosstalk_coeff", instrumentModel.crosstalkCoeff, "crosstalk between neighbouring amplifiers of one row, ADU/ADU; [0, 0.01]");
    b.bind("instrument.crosstalk_falloff", instrumentModel.crosstalkFalloff, "factor per further step of amplifier separation (a row step counts 2); [0, 1]");
    b.bind("instrument.crosstalk_spread", instrumentModel.crosstalkSpread, "fractional half-width of the uniform per-pair spread of the coefficients; [0, 1)");
    b.bind("instrument.full_well_electrons", instrumentModel.fullWellElectrons, "full-well capacity, e-; excess charge bleeds along the column; > 0");
    b.bind("instrument.cosmic_ray_rate_per_cm2_per_s", instrumentModel.cosmicRayRatePerCm2PerS, "cosmic-ray hits per cm^2 per second of dark time (1.5 per cm^2 per minute); >= 0");
    b.bind("instrument.cosmic_ray_min_length_px", instrumentModel.cosmicRayMinLengthPx, "shortest track, pixels along the path; >= 1");
    b.bind("instrument.cosmic_ray_max_length_px", instrumentModel.cosmicRayMaxLengthPx, "longest track, pixels; >= cosmicRayMinLengthPx");
    b.bind("instrument.cosmic_ray_min_electrons", instrumentModel.cosmicRayMinElectrons, "smallest deposit per track pixel, e- (log-uniform); > 0");
    b.bind("instrument.cosmic_ray_max_electrons", instrumentModel.cosmicRayMaxElectrons, "largest deposit per track pixel, e-; >= cosmicRayMinElectrons");
    b.bind("instrument.cosmic_ray_diffusion", instrumentModel.cosmicRayDiffusion, "fraction of each deposit that diffuses into the 4 edge neighbours; [0, 0.8]");
    b.bind("instrument.flat_illumination_electrons", instrumentModel.flatIlluminationElectrons, "flat-lamp level, incident e-/pixel (before the flat response); > 0");
    b.bind("instrument.dark_exposure_time_s", instrumentModel.darkExposureTimeS, "dark time of a dark exposure, s; > 0");
    b.bind("instrument.flat_exposure_time_s", instrumentModel.flatExposureTimeS, "exposure (and dark) time of a flat, s; > 0");
    b.bind("instrument.poisson_gaussian_threshold", instrumentModel.poissonGaussianThreshold, "mean (e-) at and above which Poisson draws use a rounded Gaussian; [10, 1000]");
    b.bind("sky.center_ra_deg", sky.centerRaDeg, "centre of the simulated region, deg [0, 360)");
    b.bind("sky.center_dec_deg", sky.centerDecDeg, "deg [-90, 90]");
    b.bind("sky.radius_deg", sky.radiusDeg, "radius of the simulated circle, deg (0, 10]");
    b.bind("sky.epoch_mjd", sky.epochMjd, "epoch of star positions (J2015.5, as Gaia DR2), MJD");
    b.bind("sky.star_density_per_deg2", sky.starDensityPerDeg2, "stars between starMagBright and starMagFaint, [0, 1e6]");
    b.bind("sky.star_mag_bright", sky.starMagBright, "bright limit, r mag");
    b.bind("sky.star_mag_faint", sky.starMagFaint, "faint limit, r mag (> starMagBright)");
    b.bind("sky.star_count_slope", sky.starCountSlope, "d log10 N / dm for stars, [0, 1]");
    b.bind("sky.star_tangential_velocity_kms", sky.starTangentialVelocityKms, "median tangential velocity of stars (sets proper motions), km/s (> 0)");
    b.bind("sky.star_high_velocity_fraction", sky.starHighVelocityFraction, "fraction of halo-like stars with 5x the velocity, [0, 1]");
    b.bind("sky.variable_fraction", sky.variableFraction, "fraction of synthetic stars that are variable, [0, 1]");
    b.bind("sky.variable_period_min_days", sky.variablePeriodMinDays, "shortest period, days (> 0)");
    b.bind("sky.variable_period_max_days", sky.variablePeriodMaxDays, "longest period, days (>= min)");
    b.bind("sky.variable_amplitude_min_mag", sky.variableAmplitudeMinMag, "smallest peak-to-peak r amplitude, mag (> 0)");
    b.bind("sky.variable_amplitude_max_mag", sky.variableAmplitudeMaxMag, "largest, mag (>= min)");
    b.bind("sky.galaxy_density_per_deg2", sky.galaxyDensityPerDeg2, "galaxies between galaxyMagBright and galaxyMagFaint, [0, 1e7]");
    b.bind("sky.galaxy_mag_bright", sky.galaxyMagBright, "bright limit, r mag");
    b.bind("sky.galaxy_mag_faint", sky.galaxyMagFaint, "faint limit, r mag (> galaxyMagBright)");
    b.bind("sky.galaxy_count_slope", sky.galaxyCountSlope, "d log10 N / dm for galaxies, [0, 1]");
    b.bind("sky.galaxy_hlr_at_mag20_arcsec", sky.galaxyHlrAtMag20Arcsec, "median half-light radius at r = 20, arcsec (> 0)");
    b.bind("sky.galaxy_hlr_slope_dex_per_mag", sky.galaxyHlrSlopeDexPerMag, "d log10(hlr) / dm (-0.087: 1.0' at r=20 -> 0.3' at r=26), [-0.5, 0]");
    b.bind("sky.galaxy_hlr_scatter_dex", sky.galaxyHlrScatterDex, "lognormal scatter of the radius, dex [0, 1]");
    b.bind("sky.galaxy_ellipticity_rms", sky.galaxyEllipticityRms, "rms of |e| (truncated at 0.8), [0, 0.6]");
    b.bind("sky.red_fraction_bright", sky.redFractionBright, "fraction of red (bulge-dominated) galaxies at galaxyMagBright, [0, 1]");
    b.bind("sky.red_fraction_faint", sky.redFractionFaint, "at galaxyMagFaint (linear in between), [0, 1]");
    b.bind("sky.blend_fraction", sky.blendFraction, "fraction of galaxies given a close companion galaxy, [0, 1]");
    b.bind("sky.blend_separation_min_arcsec", sky.blendSeparationMinArcsec, "companion separation range, arcsec (> 0)");
    b.bind("sky.blend_separation_max_arcsec", sky.blendSeparationMaxArcsec, "arcsec (>= min)");
    b.bind("sky.time_start_mjd", sky.timeStartMjd, "MJD");
    b.bind("sky.time_end_mjd", sky.timeEndMjd, "MJD (>= timeStartMjd)");
    b.bind("sky.transients_per_deg2", sky.transientsPerDeg2, "supernova-like transients (in random host galaxies), [0, 1e5]");
    b.bind("sky.transient_peak_mag_bright", sky.transientPeakMagBright, "brightest peak r mag");
    b.bind("sky.transient_peak_mag_faint", sky.transientPeakMagFaint, "faintest peak r mag (> bright)");
    b.bind("sky.asteroids_per_deg2", sky.asteroidsPerDeg2, "asteroids crossing the field at timeStart..timeEnd, [0, 1e5]");
    b.bind("sky.asteroid_rate_min_deg_per_day", sky.asteroidRateMinDegPerDay, "slowest rate (0.5 deg/day trails 3 px in 30 s at 0.2'/px), (0, 20]");
    b.bind("sky.asteroid_rate_max_deg_per_day", sky.asteroidRateMaxDegPerDay, "fastest rate, deg/day (>= min)");
    b.bind("sky.asteroid_mag_bright", sky.asteroidMagBright, "brightest r mag");
    b.bind("sky.asteroid_mag_faint", sky.asteroidMagFaint, "faintest r mag (> bright)");
    b.bind("sky.reference_completeness_mag", sky.referenceCompletenessMag, "r mag to which the files are taken as complete");
    b.bind("observing.bands", observing.bands, "bands observed, a subset of ugrizy, no repeats");
    b.bind("observing.visits_per_band", observing.visitsPerBand, "visits in each band over the whole plan, [1, 100000]");
    b.bind("observing.nights", observing.nights, "nights the visits are spread over (round robin), [1, 10000]");
    b.bind("observing.start_mjd", observing.startMjd, "MJD (UTC) of the start of the first night; night n starts at startMjd + n");
    b.bind("observing.night_length_hours", observing.nightLengthHours, "length of a night, hours (0, 14]; visits cluster about the field's transit near its middle");
    b.bind("observing.max_hour_angle_hours", observing.maxHourAngleHours, "visits span hour angles within +- this (shrunk to respect maxAirmass), hours (0, 6]");
    b.bind("observing.max_airmass", observing.maxAirmass, "highest airmass planned, [1.05, 3]");
    b.bind("observing.site_latitude_deg", observing.siteLatitudeDeg, "observatory latitude (Cerro Pachon), deg [-90, 90]");
    b.bind("observing.site_longitude_deg", observing.siteLongitudeDeg, "observatory longitude, east positive, deg [-180, 180]");
    b.bind("observing.exposure_time_s", observing.exposureTimeS, "exposure time, s (0, 3600]");
    b.bind("observing.visit_gap_s", observing.visitGapS, "minimum readout + slew time between exposures, s [0, 3600]");
    b.bind("observing.field_ra_deg", observing.fieldRaDeg, "field centre, deg [0, 360)");
    b.bind("observing.field_dec_deg", observing.fieldDecDeg, "deg [-90, 90]; must rise above 25 deg altitude at the site");
    b.bind("observing.dither_radius_deg", observing.ditherRadiusDeg, "boresights are uniform in a disc of this radius about the field centre, deg [0, 5]");
    b.bind("observing.rotation_min_deg", observing.rotationMinDeg, "rotSkyPos (position angle of focal-plane +y) range, deg");
    b.bind("observing.rotation_max_deg", observing.rotationMaxDeg, "deg (>= min, range <= 360)");
    b.bind("observing.seeing_median_arcsec", observing.seeingMedianArcsec, "median FWHM at zenith in r, arcsec (0.2, 5]; scales as X^0.6 and wavelength^-0.2");
    b.bind("observing.seeing_scatter", observing.seeingScatter, "lognormal sigma (natural log) of the seeing, [0, 1]");
    b.bind("observing.extinction_per_airmass", observing.extinctionPerAirmass, "k, mag/airmass, [0, 2]");
    b.bind("observing.wavelength_nm", observing.wavelengthNm, "effective wavelengths, nm (> 0)");
    b.bind("observing.photometric_fraction", observing.photometricFraction, "fraction of visits with no clouds, [0, 1]");
    b.bind("observing.cloud_mean_mag", observing.cloudMeanMag, "mean grey cloud extinction of the others (exponential), mag [0, 2]");
    b.bind("observing.cloud_max_mag", observing.cloudMaxMag, "cloud extinction cap, mag [0, 5]");
    b.bind("observing.detector_throughput_rms_mag", observing.detectorThroughputRmsMag, "rms of the per-detector, per-band throughput offset, mag [0, 0.1]");
    b.bind("observing.sky_mag_per_arcsec2", observing.skyMagPerArcsec2, "dark sky at zenith, mag/arcsec^2 [10, 30]");
    b.bind("observing.sky_scatter_mag", observing.skyScatterMag, "rms visit-to-visit sky variation (moon, airglow), mag [0, 2]");
    b.bind("observing.sky_gradient_rms", observing.skyGradientRms, "rms of the sky gradient components, fraction per 100 mm of focal plane, [0, 0.5]");
    b.bind("observing.pointing_error_rms_arcsec", observing.pointingErrorRmsArcsec, "rms per axis of the (true - commanded) pointing, arcsec [0, 60]");
    b.bind("observing.rotation_error_rms_deg", observing.rotationErrorRmsDeg, "rms of the (true - commanded) rotation, deg [0, 1]");
    b.bind("observing.distortion_coeff_per_deg2", observing.distortionCoeffPerDeg2, "radial cubic distortion k, 1/deg^2 [-1, 1]; 0.01 gives k r^3 = 1.5' at the edge (0.35 deg) and 4.2' at the corners (0.49 deg) of the default 3x3-detec");
    b.bind("observing.psf_ellipticity_rms", observing.psfEllipticityRms, "rms per component of the visit's mean PSF ellipticity, [0, 0.2]");
    b.bind("observing.psf_ellipticity_gradient_rms", observing.psfEllipticityGradientRms, "rms of the linear ellipticity pattern, per 100 mm, [0, 0.2]");
    b.bind("observing.psf_fwhm_radial_growth", observing.psfFwhmRadialGrowth, "fractional FWHM increase at 100 mm from the axis (quadratic in radius), [0, 1]");
    b.bind("observing.zero_point_mag", observing.zeroPointMag, "AB mag giving 1 e-/s above the atmosphere (Rubin SMTN-002 X=1 values + k), [15, 40]");
    b.bind("camera.name", camera.name, "camera name");
    b.bind("camera.detector_width", camera.detectorWidth, "assembled data pixels in x (divisible by ampsX)");
    b.bind("camera.detector_height", camera.detectorHeight, "assembled data pixels in y (divisible by ampsY)");
    b.bind("camera.amps_x", camera.ampsX, "amplifier columns per detector (>= 1)");
    b.bind("camera.amps_y", camera.ampsY, "amplifier rows per detector (>= 1)");
    b.bind("camera.prescan", camera.prescan, "serial prescan columns per amplifier (>= 0)");
    b.bind("camera.serial_overscan", camera.serialOverscan, "serial overscan columns per amplifier (>= 0)");
    b.bind("camera.parallel_overscan", camera.parallelOverscan, "parallel overscan rows per amplifier (>= 0)");
    b.bind("camera.pixel_size_microns", camera.pixelSizeMicrons, "pixel pitch, microns (> 0)");
    b.bind("camera.plate_scale_arcsec_per_mm", camera.plateScaleArcsecPerMm, "arcsec/mm (> 0); 20 arcsec/mm x 10 um = 0.2 arcsec/pixel");
    b.bind("camera.detectors_x", camera.detectorsX, "detector grid columns (>= 1)");
    b.bind("camera.detectors_y", camera.detectorsY, "detector grid rows (>= 1)");
    b.bind("camera.n_detectors", camera.nDetectors, "detectors placed, in raster order from the lower left (0: the full grid)");
    b.bind("camera.gap_mm", camera.gapMm, "gap between neighbouring detectors, mm (>= 0)");
    b.bind("camera.raft_name", camera.raftName, "detector names are raftName + '_S' + row + column");
    b.bind("camera.first_detector_id", camera.firstDetectorId, "id of the first detector; ids increase in raster order");
    b.bind("camera.gain", camera.gain, "mean gain, e-/ADU (> 0)");
    b.bind("camera.gain_scatter", camera.gainScatter, "fractional half-width of the uniform per-amp gain spread, [0, 1)");
    b.bind("camera.read_noise", camera.readNoise, "mean read noise, e- (>= 0)");
    b.bind("camera.read_noise_scatter", camera.readNoiseScatter, "fractional half-width of the per-amp read noise spread, [0, 1)");
    b.bind("camera.saturation", camera.saturation, "saturation level, ADU (> 0)");
}

SimConfig loadSimConfig(const std::string& preset, const std::vector<std::string>& files,
                        const std::vector<std::string>& overrides, std::string* effective) {
    SimConfig cfg;
    ConfigBinder binder;
    cfg.bind(binder);
    if (!preset.empty()) {
        auto it = simPresets().find(preset);
        if (it == simPresets().end()) {
            std::string names;
            for (const auto& [n, t] : simPresets()) names += (names.empty() ? "" : ", ") + n;
            throw ConfigError("unknown simulator preset '" + preset + "' (have: " + names + ")");
        }
        binder.parseText(it->second, "preset " + preset);
    }
    for (const auto& f : files) binder.parseFile(f);
    for (const auto& o : overrides) binder.setAssignment(o);
    cfg.validate();
    if (effective) *effective = binder.dump(false);
    return cfg;
}

}  // namespace drp
