"""`make demo`: choose timesteps from the data, then forecast weekly CO2.

Uses the Mauna Loa weekly CO2 series that ships with statsmodels (2,284
weeks, 59 of them missing), end to end with the domain-specific split:

1. `suggest_timesteps` reads the ACF/PACF of the series (differenced first:
   it trends) and prints the rule that chose the length; the ACF/PACF
   figure is saved with the chosen lag marked.
2. `domain_split` cuts the weekly changes into chunks of that length, on
   4 contiguous streams, and the plan is split by time into training and
   validation.
3. A stateful `TBPTTLSTM` is trained on the plan's batches with its reset
   callbacks; its one-week-ahead error on the validation weeks is compared
   with the persistence forecast ("next week equals this week"), and the
   forecast figure is saved beside the ACF/PACF figure.

Run: `python -m keras_tbptt demo [--epochs N] [--out-dir DIR]`.
"""

import argparse
import os
import time

import numpy as np


def load_co2():
    import statsmodels.api as sm

    frame = sm.datasets.co2.load_pandas().data
    return frame["co2"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--out-dir", default="demo_output",
                        help="where to save the figures ('' to skip them)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep the output readable

    import matplotlib

    matplotlib.use("Agg")
    import keras

    import keras_tbptt as kt

    keras.utils.set_random_seed(0)
    co2 = load_co2()
    print(f"Data: statsmodels co2, {len(co2)} weekly values "
          f"{co2.index[0]:%Y-%m-%d} .. {co2.index[-1]:%Y-%m-%d}, "
          f"{int(co2.isna().sum())} missing (interpolated).")

    print("\n1. Timesteps from the ACF/PACF (kt.suggest_timesteps)")
    suggestion = kt.suggest_timesteps(co2, nan="interpolate")
    print("   " + str(suggestion).replace("\n", "\n   "))
    if args.out_dir:
        _save(suggestion.plot(), os.path.join(args.out_dir, "co2_acf_pacf.png"))

    level = co2.interpolate(limit_direction="both").to_numpy()
    change = np.diff(level)  # learn next week's change from this week's
    scale = change.std()
    inputs, targets = change[:-1] / scale, change[1:] / scale

    print("\n2. Domain-specific split of the weekly changes (kt.domain_split)")
    plan = kt.domain_split(inputs, targets, streams=4)
    train, validation = plan.validation_split(0.2)
    print(f"   plan:       {plan!r}".replace("\n", "\n   "))
    print(f"   training:   {train}")
    print(f"   validation: {validation}  (the last 20% of the weeks)")

    model = keras.Sequential([
        keras.Input(batch_shape=(plan.batch_size, plan.timesteps, 1)),
        kt.TBPTTLSTM(32, stateful=True, return_sequences=True, **plan.layer_kwargs),
        keras.layers.Dense(1),
    ])
    # Keras' default reduction with the plan's weights (0 on padding and
    # filler rows) reports the mean over the real steps of each epoch.
    model.compile(
        loss="mse",
        optimizer=keras.optimizers.Adam(0.003, clipnorm=1.0),
    )
    print(f"\n3. Stateful TBPTTLSTM(32) + Dense(1), {args.epochs} epochs with the "
          "plan's reset callbacks")

    class Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if (epoch + 1) % 10 == 0 or epoch == 0:
                print(f"  epoch {epoch + 1:3d}: loss {logs['loss']:.3f}, "
                      f"val_loss {logs['val_loss']:.3f}")

    model.fit(
        train.dataset(),
        validation_data=validation.dataset(),
        callbacks=[*train.callbacks(validation=validation), Progress()],
        epochs=args.epochs,
        shuffle=False,
        verbose=0,
    )

    predicted = validation.unsplit(
        model.predict(validation.dataset(), callbacks=validation.callbacks(), verbose=0)
    )[:, 0] * scale
    held = ~np.isnan(predicted)
    # Step t predicts the change from week t+1 to week t+2.
    steps = np.flatnonzero(held)
    truth = level[steps + 2]
    forecast = level[steps + 1] + predicted[steps]
    persistence = level[steps + 1]
    rmse = float(np.sqrt(np.mean((forecast - truth) ** 2)))
    baseline = float(np.sqrt(np.mean((persistence - truth) ** 2)))
    print(f"Validation, {held.sum()} weeks: one-week-ahead RMSE {rmse:.3f} ppm, "
          f"persistence {baseline:.3f} ppm (ratio {rmse / baseline:.2f}).")

    if args.out_dir:
        import matplotlib.pyplot as plt

        weeks = co2.index[steps + 2]
        figure, axis = plt.subplots(figsize=(9, 3.5))
        axis.plot(weeks, truth, label="observed", color="black", linewidth=1)
        axis.plot(weeks, forecast, label=f"TBPTTLSTM (RMSE {rmse:.2f})", linewidth=1)
        axis.set(ylabel="CO2 (ppm)", title="One-week-ahead forecast, validation weeks")
        axis.legend()
        figure.tight_layout()
        _save(figure, os.path.join(args.out_dir, "co2_forecast.png"))
    print(f"Done in {time.perf_counter() - started:.0f} s.")
    return rmse, baseline


def _save(figure, path):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    figure.savefig(path, dpi=110)
    print(f"   figure: {path}")


if __name__ == "__main__":
    main()
