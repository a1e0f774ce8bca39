"""The reference for `aiplus data value`: pydvl's KNNShapleyValuation on scikit-learn's bundled
breast-cancer dataset (569 points, 30 continuous features, so no two distances tie). Writes the
split as train.csv and test.csv (label last) into the directory given, and prints pydvl's value
of each training row, in row order, as one JSON line."""

import json
import sys
import warnings

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
from pydvl.valuation import Dataset, KNNShapleyValuation  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402

out, k = sys.argv[1], int(sys.argv[2])
x, y = load_breast_cancer(return_X_y=True)
order = np.random.default_rng(7).permutation(len(y))
x, y = x[order], y[order]
n_train = 400
for name, rows, labels in [("train", x[:n_train], y[:n_train]), ("test", x[n_train:], y[n_train:])]:
    np.savetxt(f"{out}/{name}.csv", np.column_stack([rows, labels]), delimiter=",", fmt="%.17g")
train = Dataset(x[:n_train], y[:n_train])
test = Dataset(x[n_train:], y[n_train:])
valuation = KNNShapleyValuation(KNeighborsClassifier(n_neighbors=k), test_data=test, progress=False)
valuation.fit(train)
result = valuation.values()
values = np.zeros(n_train)
values[np.asarray(result.indices, dtype=int)] = result.values
print(json.dumps({"k": k, "values": values.tolist()}))
